#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned npm solc (no download, no network) and writes
// indexer/devchain/artifacts/<Contract>.json as {"abi", "bytecode"}: sorted keys, two-space
// indent, trailing newline, so the same sources always give byte-identical files.
//
//   node indexer/devchain/compile.mjs           write the artifacts
//   node indexer/devchain/compile.mjs --check   exit 1 if the committed artifacts are stale
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const solc = require('solc')

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..', '..')
const SOURCES_DIR = path.join(ROOT, 'contracts')
const ARTIFACTS_DIR = path.join(HERE, 'artifacts')

// Fixed settings: changing any of them changes every bytecode.
const SETTINGS = {
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
}

function readSources() {
  const names = fs.readdirSync(SOURCES_DIR).filter((f) => f.endsWith('.sol')).sort()
  const sources = {}
  for (const name of names) {
    // Keys are root-relative so that relative imports resolve without a callback.
    sources[`contracts/${name}`] = { content: fs.readFileSync(path.join(SOURCES_DIR, name), 'utf8') }
  }
  return sources
}

function compile(sources) {
  const input = { language: 'Solidity', sources, settings: SETTINGS }
  const output = JSON.parse(solc.compile(JSON.stringify(input)))
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error')
  for (const e of output.errors ?? []) process.stderr.write(e.formattedMessage + '\n')
  if (errors.length > 0) throw new Error(`solc ${solc.version()}: ${errors.length} error(s)`)
  return output.contracts
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]),
  )
}

// Returns {fileName: text} for every deployable contract (interfaces/abstract have no bytecode).
function renderArtifacts(contracts) {
  const files = {}
  for (const unit of Object.keys(contracts).sort()) {
    for (const [name, c] of Object.entries(contracts[unit])) {
      if (!c.evm.bytecode.object) continue
      const file = `${name}.json`
      if (file in files) throw new Error(`two contracts named ${name}`)
      const artifact = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` }
      files[file] = JSON.stringify(sortKeys(artifact), null, 2) + '\n'
    }
  }
  return files
}

function existingArtifacts() {
  if (!fs.existsSync(ARTIFACTS_DIR)) return []
  return fs.readdirSync(ARTIFACTS_DIR).filter((f) => f.endsWith('.json')).sort()
}

function check(files) {
  const problems = []
  for (const [file, text] of Object.entries(files)) {
    const target = path.join(ARTIFACTS_DIR, file)
    if (!fs.existsSync(target)) problems.push(`missing ${file}`)
    else if (fs.readFileSync(target, 'utf8') !== text) problems.push(`stale ${file}`)
  }
  for (const file of existingArtifacts()) {
    if (!(file in files)) problems.push(`extra ${file}`)
  }
  for (const p of problems) process.stderr.write(`artifacts: ${p}\n`)
  if (problems.length > 0) process.stderr.write('run `make contracts` and commit the result\n')
  return problems.length === 0
}

function write(files) {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true })
  for (const file of existingArtifacts()) {
    if (!(file in files)) fs.rmSync(path.join(ARTIFACTS_DIR, file))
  }
  for (const [file, text] of Object.entries(files)) {
    fs.writeFileSync(path.join(ARTIFACTS_DIR, file), text)
  }
  process.stdout.write(`wrote ${Object.keys(files).length} artifacts to ${ARTIFACTS_DIR}\n`)
}

function main(argv) {
  const unknown = argv.filter((a) => a !== '--check')
  if (unknown.length > 0) {
    process.stderr.write(`usage: compile.mjs [--check] (unknown: ${unknown.join(' ')})\n`)
    return 2
  }
  const files = renderArtifacts(compile(readSources()))
  if (argv.includes('--check')) return check(files) ? 0 : 1
  write(files)
  return 0
}

process.exitCode = main(process.argv.slice(2))
