"""The fault-injecting RPC proxy, driven by a plain aiohttp client against a real anvil.

Each fault must be visible to a client exactly as scripted; otherwise tests of
the indexer's recovery would pass without the fault ever happening.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.limits import PROVIDER_LIMIT_ERRORS, LimitError, limit_error
from tests.helpers.polling import eventually, wait_until
from tests.helpers.proxy import RpcProxy

ANVIL = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "anvil"
# Init code that emits one anonymous log (PUSH1 0 PUSH1 0 LOG0) and deploys nothing.
EMIT_LOG = "0x60006000a0"
HEAD = 30  # blocks 1..20 hold one log each, block 21 five, 22..30 none
SETTINGS = FaultSettings(slow_s=0.2, hold_s=30.0)
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Chain:
    url: str
    log_blocks: Counter[int]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rpc_sync(url: str, method: str, *params: Any) -> Any:
    """A blocking call for fixtures; raises on a JSON-RPC error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def _wait_ready(process: subprocess.Popen[bytes], url: str, deadline_s: float = 15.0) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"anvil exited with {process.returncode}")
        try:
            _rpc_sync(url, "eth_chainId")
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    wait_until(ready, timeout=deadline_s, what=f"anvil ready at {url}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to the session we started (the npm wrapper has a child)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _seed(url: str) -> Counter[int]:
    """Mine the layout HEAD describes, fast: few blocks, no contracts to compile."""
    sender = _rpc_sync(url, "eth_accounts")[0]
    for _ in range(20):
        _rpc_sync(url, "eth_sendTransaction", {"from": sender, "data": EMIT_LOG})
    _rpc_sync(url, "evm_setAutomine", False)
    for _ in range(5):
        _rpc_sync(url, "eth_sendTransaction", {"from": sender, "data": EMIT_LOG})
    _rpc_sync(url, "evm_mine")
    _rpc_sync(url, "evm_setAutomine", True)
    _rpc_sync(url, "anvil_mine", hex(HEAD - 21))
    logs = _rpc_sync(url, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    return Counter(int(log["blockNumber"], 16) for log in logs)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    process = subprocess.Popen(
        [str(ANVIL), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_ready(process, url)
        log_blocks = _seed(url)
        assert int(_rpc_sync(url, "eth_blockNumber"), 16) == HEAD
        yield Chain(url, log_blocks)
    finally:
        _stop(process)


@pytest.fixture
async def proxy(chain: Chain) -> AsyncIterator[RpcProxy]:
    async with RpcProxy(chain.url, seed=7, settings=SETTINGS) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def req(method: str, *params: Any, rid: int = 1) -> Json:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}


def logs_req(first: int, last: int | str, rid: int = 1) -> Json:
    to_block = last if isinstance(last, str) else hex(last)
    return req("eth_getLogs", {"fromBlock": hex(first), "toBlock": to_block}, rid=rid)


async def post(
    session: aiohttp.ClientSession, url: str, payload: Any, *, within_s: float = 10.0
) -> Reply:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    async with session.post(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=within_s),
    ) as response:
        return Reply(response.status, dict(response.headers), await response.read())


async def test_forwards_unfaulted_calls_and_batches(
    chain: Chain, proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    batch = [req("eth_chainId", rid=1), logs_req(0, "latest", rid=2)]
    direct = await post(client, chain.url, batch)
    through = await post(client, proxy.url, batch)
    assert through.status == 200
    assert through.json() == direct.json()
    assert len(through.json()[1]["result"]) == sum(chain.log_blocks.values())
    assert (await post(client, proxy.url, req("eth_blockNumber"))).json()["result"] == hex(HEAD)
    assert proxy.stats.requests == proxy.stats.forwarded == 2
    assert not proxy.stats.injected


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault.HTTP_429, 429, "1"),
        (Fault.HTTP_429_NO_RETRY_AFTER, 429, None),
        (Fault.HTTP_500, 500, None),
        (Fault.HTTP_502, 502, None),
        (Fault.HTTP_503, 503, None),
    ],
)
async def test_status_faults(
    proxy: RpcProxy,
    client: aiohttp.ClientSession,
    fault: Fault,
    status: int,
    retry_after: str | None,
) -> None:
    proxy.script(fault)
    failed = await post(client, proxy.url, req("eth_chainId"))
    assert failed.status == status
    assert failed.headers.get("Retry-After") == retry_after
    with pytest.raises(orjson.JSONDecodeError):
        failed.json()
    assert (await post(client, proxy.url, req("eth_chainId"))).status == 200
    assert proxy.stats.injected == Counter({fault: 1})
    assert proxy.stats.forwarded == 1


async def test_reset_closes_the_connection_without_a_response(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    proxy.script(Fault.RESET)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client, proxy.url, req("eth_chainId"))
    assert (await post(client, proxy.url, req("eth_chainId"))).status == 200
    assert proxy.stats.injected == Counter({Fault.RESET: 1})


async def test_read_timeout_holds_the_request_past_the_client_timeout(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    proxy.script(Fault.READ_TIMEOUT)
    with pytest.raises(TimeoutError):
        await post(client, proxy.url, req("eth_chainId"), within_s=0.3)
    assert (await post(client, proxy.url, req("eth_chainId"))).status == 200
    assert proxy.stats.forwarded == 1


async def test_slow_answers_correctly_after_the_delay(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    proxy.script(Fault.SLOW)
    started = time.monotonic()
    slow = await post(client, proxy.url, req("eth_blockNumber"))
    assert time.monotonic() - started >= SETTINGS.slow_s
    assert slow.json()["result"] == hex(HEAD)
    assert proxy.stats.injected == Counter({Fault.SLOW: 1})


@pytest.mark.parametrize("fault", [Fault.TRUNCATED, Fault.INVALID_JSON])
async def test_body_faults_break_the_json(
    proxy: RpcProxy, client: aiohttp.ClientSession, fault: Fault
) -> None:
    intact = await post(client, proxy.url, logs_req(1, 5))
    proxy.script(fault)
    broken = await post(client, proxy.url, logs_req(1, 5))
    assert broken.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        broken.json()
    if fault is Fault.TRUNCATED:
        assert intact.body.startswith(broken.body)
        assert len(broken.body) < len(intact.body)


async def test_item_faults_on_single_calls(proxy: RpcProxy, client: aiohttp.ClientSession) -> None:
    for fault in (Fault.RPC_ERROR, Fault.WRONG_ID, Fault.EMPTY_LOGS, Fault.HEAD_JUMP):
        proxy.script(fault)
    # RPC_ERROR and WRONG_ID fit any call; EMPTY_LOGS waits for eth_getLogs.
    error = (await post(client, proxy.url, req("eth_blockNumber", rid=5))).json()
    assert error == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": {"code": -32000, "message": "internal error"},
    }
    wrong = (await post(client, proxy.url, req("eth_chainId", rid=5))).json()
    assert wrong["id"] != 5
    assert "result" in wrong
    assert (await post(client, proxy.url, logs_req(1, HEAD))).json()["result"] == []
    jumped = (await post(client, proxy.url, req("eth_blockNumber"))).json()
    assert jumped["result"] == hex(HEAD - SETTINGS.head_jump)
    assert (await post(client, proxy.url, req("eth_blockNumber"))).json()["result"] == hex(HEAD)
    assert proxy.pending == 0
    assert sum(proxy.stats.injected.values()) == 4


async def test_batch_faults_and_item_faults_inside_batches(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    batch = [req("eth_chainId", rid=1), req("eth_blockNumber", rid=2), logs_req(1, 3, rid=3)]
    proxy.script(Fault.BATCH_MISSING)
    assert [item["id"] for item in (await post(client, proxy.url, batch)).json()] == [1, 2]
    proxy.script(Fault.BATCH_REORDERED)
    assert [item["id"] for item in (await post(client, proxy.url, batch)).json()] == [3, 2, 1]
    proxy.script(Fault.RPC_ERROR, method="eth_blockNumber")
    proxy.script(Fault.EMPTY_LOGS)
    answers = (await post(client, proxy.url, batch)).json()
    assert [item["id"] for item in answers] == [1, 2, 3]
    assert "result" in answers[0]
    assert answers[1]["error"]["message"] == "internal error"
    assert answers[2]["result"] == []
    # A batch fault never hits a single call: it waits for the next batch.
    proxy.script(Fault.BATCH_REORDERED)
    assert "result" in (await post(client, proxy.url, req("eth_chainId"))).json()
    assert proxy.pending == 1


async def test_scripts_fire_exactly_on_matching_requests(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    proxy.script(Fault.HTTP_503, method="eth_getLogs")
    proxy.script(Fault.RPC_ERROR, times=2, method="eth_chainId")
    outcomes = []
    for payload in [
        req("eth_blockNumber"),
        req("eth_chainId"),
        logs_req(1, 2),
        req("eth_blockNumber"),
        req("eth_chainId"),
        req("eth_chainId"),
        logs_req(1, 2),
    ]:
        reply = await post(client, proxy.url, payload)
        outcomes.append(reply.status if reply.status != 200 else "error" in reply.json())
    assert outcomes == [False, True, 503, False, True, False, False]
    assert proxy.stats.injected == Counter({Fault.RPC_ERROR: 2, Fault.HTTP_503: 1})
    assert proxy.pending == 0


def _outcome(reply: Reply, rid: int) -> str:
    if reply.status != 200:
        return str(reply.status)
    answer = reply.json()
    if "error" in answer:
        return "error"
    if answer["id"] != rid:
        return "wrong_id"
    return "empty" if answer["result"] == [] else "ok"


async def _random_run(upstream: str, seed: int) -> tuple[list[str], Counter[Fault]]:
    faults = [Fault.HTTP_503, Fault.RPC_ERROR, Fault.WRONG_ID, Fault.EMPTY_LOGS]
    async with (
        RpcProxy(upstream, seed=seed, settings=SETTINGS) as proxy,
        aiohttp.ClientSession() as session,
    ):
        proxy.randomize(0.5, faults)
        outcomes = []
        for rid in range(40):
            payload = logs_req(1, 3, rid=rid) if rid % 2 else req("eth_blockNumber", rid=rid)
            outcomes.append(_outcome(await post(session, proxy.url, payload), rid))
        return outcomes, proxy.stats.injected


async def test_random_faults_are_reproducible_for_a_seed(chain: Chain) -> None:
    first, injected = await _random_run(chain.url, seed=11)
    again, _ = await _random_run(chain.url, seed=11)
    other, _ = await _random_run(chain.url, seed=12)
    assert first == again
    assert first != other
    assert 5 < first.count("ok") < 35
    assert sum(injected.values()) == 40 - first.count("ok")
    # EMPTY_LOGS is drawn only for eth_getLogs calls (odd ids).
    assert all(rid % 2 for rid, outcome in enumerate(first) if outcome == "empty")


def _suggested(error: Json) -> tuple[int, int]:
    """The range a refusal suggests, read the way a client would read it."""
    message = error["message"]
    if found := re.search(r"\[(0x[0-9a-f]+), (0x[0-9a-f]+)\]", message):
        first, last = int(found[1], 16), int(found[2], 16)
    elif found := re.search(r"range (\d+)-(\d+)", message):
        first, last = int(found[1]), int(found[2])
    else:
        raise AssertionError(f"no range in {message!r}")
    if "data" in error:
        assert error["data"] == {"from": hex(first), "to": hex(last)}
    return first, last


@pytest.mark.parametrize("entry", PROVIDER_LIMIT_ERRORS, ids=lambda entry: entry.provider)
async def test_limit_refuses_with_the_provider_error_and_a_working_suggestion(
    proxy: RpcProxy, client: aiohttp.ClientSession, entry: LimitError
) -> None:
    proxy.limit_get_logs(max_range=5, max_results=3, error=entry)
    refused = await post(client, proxy.url, logs_req(1, HEAD))
    assert refused.status == entry.status
    # Blocks 1..5 fit the range limit, but only 1..3 fit three logs.
    expected = entry.render((1, 3), span=HEAD, max_range=5, max_results=3)
    assert refused.json()["error"] == expected
    if entry.suggests_range:
        assert _suggested(refused.json()["error"]) == (1, 3)
    accepted = await post(client, proxy.url, logs_req(1, 3))
    assert accepted.status == 200
    assert len(accepted.json()["result"]) == 3
    assert proxy.stats.refused == 1


async def test_result_limit_suggests_up_to_a_dense_block_and_accepts_it_alone(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    proxy.limit_get_logs(max_results=4, error=limit_error("infura"))
    refused = (await post(client, proxy.url, logs_req(18, "latest"))).json()["error"]
    assert _suggested(refused) == (18, 20)
    assert refused["message"].startswith("query returned more than 4 results.")
    # Block 21 alone holds five logs: no smaller range exists, so it passes.
    dense = (await post(client, proxy.url, logs_req(21, 21))).json()
    assert len(dense["result"]) == 5
    proxy.limit_get_logs()
    assert len((await post(client, proxy.url, logs_req(18, 30))).json()["result"]) == 8


async def test_limit_applies_per_call_inside_a_batch(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    proxy.limit_get_logs(max_range=10, error=limit_error("quicknode"))
    reply = await post(client, proxy.url, [logs_req(1, 10, rid=1), logs_req(1, 11, rid=2)])
    assert reply.status == 200
    ok, refused = reply.json()
    assert len(ok["result"]) == 10
    assert refused["error"] == {"code": -32614, "message": "eth_getLogs is limited to a 10 range"}


def test_limit_rejects_templates_it_cannot_fill() -> None:
    proxy = RpcProxy("http://127.0.0.1:1/")
    with pytest.raises(ValueError, match="max_results"):
        proxy.limit_get_logs(max_range=10, error=limit_error("infura"))


async def test_lagging_node_hides_blocks_above_its_head(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    block_20 = (await post(client, proxy.url, req("eth_getBlockByNumber", "0x14", False))).json()
    tx = block_20["result"]["transactions"][0]
    proxy.lagging(12)
    visible = HEAD - 12
    head, latest, above, by_hash, receipt, logs, past, by_block_hash = (
        await post(
            client,
            proxy.url,
            [
                req("eth_blockNumber", rid=1),
                req("eth_getBlockByNumber", "latest", False, rid=2),
                req("eth_getBlockByNumber", hex(visible + 1), False, rid=3),
                req("eth_getBlockByHash", block_20["result"]["hash"], False, rid=4),
                req("eth_getTransactionReceipt", tx, rid=5),
                logs_req(1, "latest", rid=6),
                logs_req(1, visible + 1, rid=7),
                req("eth_getLogs", {"blockHash": block_20["result"]["hash"]}, rid=8),
            ],
        )
    ).json()
    assert head["result"] == latest["result"]["number"] == hex(visible)
    assert above["result"] is by_hash["result"] is receipt["result"] is None
    assert len(logs["result"]) == visible
    assert past["error"]["message"] == "block range extends beyond current head block"
    assert by_block_hash["error"]["message"] == "unknown block"
    proxy.lagging(0)
    assert (await post(client, proxy.url, req("eth_blockNumber"))).json()["result"] == hex(HEAD)


async def test_flapping_head_alternates_between_two_nodes(
    proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    async def heads(n: int) -> list[int]:
        replies = [await post(client, proxy.url, req("eth_blockNumber")) for _ in range(n)]
        return [HEAD - int(reply.json()["result"], 16) for reply in replies]

    proxy.flapping_head(4)
    assert await heads(4) == [0, 4, 0, 4]
    proxy.flapping_head(2, every=2)
    assert await heads(5) == [0, 0, 2, 2, 0]
    # A batch is served by one node: head and logs agree within it.
    batch = [req("eth_blockNumber"), logs_req(HEAD, HEAD, rid=2)]
    front, back = [(await post(client, proxy.url, batch)).json() for _ in range(2)]
    assert front[0]["result"] == hex(HEAD)
    assert front[1]["result"] == []
    assert back[0]["result"] == hex(HEAD - 2)
    assert back[1]["error"]["message"] == "block range extends beyond current head block"


async def test_non_json_bodies_pass_through(
    chain: Chain, proxy: RpcProxy, client: aiohttp.ClientSession
) -> None:
    direct = await post(client, chain.url, b"not json")
    through = await post(client, proxy.url, b"not json")
    assert (through.status, through.body) == (direct.status, direct.body)


async def test_unreachable_node_answers_502(client: aiohttp.ClientSession) -> None:
    async with RpcProxy(f"http://127.0.0.1:{_free_port()}/") as proxy:
        assert (await post(client, proxy.url, req("eth_chainId"))).status == 502


async def test_stop_ends_held_requests_and_leaves_nothing_running(chain: Chain) -> None:
    proxy = RpcProxy(chain.url, settings=SETTINGS)
    await proxy.start()
    port = int(proxy.url.rsplit(":", 1)[1].strip("/"))
    proxy.script(Fault.READ_TIMEOUT)
    async with aiohttp.ClientSession() as session:
        held = asyncio.create_task(post(session, proxy.url, req("eth_chainId")))

        async def arrived() -> bool:
            return proxy.stats.requests == 1

        await eventually(arrived, within=5, what="the held request at the proxy", every=0.01)
        started = time.monotonic()
        await proxy.stop()
        with pytest.raises(aiohttp.ClientConnectionError):
            await held
        assert time.monotonic() - started < SETTINGS.hold_s / 2
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, proxy.url, req("eth_chainId"))
    await proxy.stop()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
