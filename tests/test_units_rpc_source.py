"""Pure pieces of the RPC client and the source: where a request goes, how an answer is
matched and classified, how a range of logs is checked, and the logsBloom test.

No database, no anvil, no network, no sleeping: the endpoints' clock is a fake one.
"""

from __future__ import annotations

import random
import time
import types
from typing import Any

import pytest
import structlog.testing
from eth_hash.auto import keccak

from indexer import rpc
from indexer.chain import BlockRef, RawLog
from indexer.errors import InconsistentResponse, NotReady, RangeTooLarge, RpcError, RpcUnavailable
from indexer.source import _bloom_bits, _blooms, _in_bloom, _require_headers, _validate, parse_logs

# --- where a request goes: rpc._Endpoints -------------------------------------------------


class Clock:
    """Stands in for time.monotonic in indexer.rpc; moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        rpc, "time", types.SimpleNamespace(monotonic=fake.monotonic, perf_counter=time.perf_counter)
    )
    return fake


def endpoints(n: int, heads: list[int | None] | None = None) -> rpc._Endpoints:
    found = rpc._Endpoints([f"http://node-{i}/" for i in range(n)])
    for endpoint, head in zip(found.items, heads or [], strict=False):
        endpoint.head = head
    return found


def rest(found: rpc._Endpoints, index: int, clock: Clock) -> float:
    return found.items[index].cooldown_until - clock.now


def test_no_url_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one RPC URL"):
        rpc._Endpoints([])


def test_the_first_url_in_configured_order_is_picked(clock: Clock) -> None:
    found = endpoints(3)
    assert found.pick().index == 0
    assert found.pick(min_block=10**9).index == 0  # no head known yet: it may have any block


def test_min_block_picks_the_first_url_that_has_it(clock: Clock) -> None:
    found = endpoints(3, heads=[10, 20, 15])
    assert found.pick(min_block=5).index == 0
    assert found.pick(min_block=10).index == 0
    assert found.pick(min_block=11).index == 1
    assert found.pick(min_block=20).index == 1
    assert found.pick(min_block=None).index == 0


def test_when_no_url_has_the_block_the_most_advanced_is_picked(clock: Clock) -> None:
    found = endpoints(3, heads=[10, 20, 15])
    assert found.pick(min_block=21).index == 1
    found.failed(found.items[1], None)  # the most advanced rests: the next most advanced
    assert found.pick(min_block=21).index == 2


def test_a_failed_url_rests_and_the_next_one_is_picked(clock: Clock) -> None:
    found = endpoints(2)
    found.failed(found.items[0], None)
    assert rest(found, 0, clock) == 1.0
    assert [e.index for e in found.usable()] == [1]
    assert found.pick().index == 1
    clock.now += 0.999
    assert found.pick().index == 1
    clock.now += 0.001  # its rest is over: traffic goes back to the first URL
    assert found.pick().index == 0


def test_the_rest_doubles_with_each_failure_up_to_its_cap(clock: Clock) -> None:
    found = endpoints(2)
    rests = []
    for _ in range(7):
        found.failed(found.items[0], None)
        rests.append(rest(found, 0, clock))
    assert rests == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert found.items[0].failures == 7


def test_retry_after_is_honoured_capped_and_never_shortens_the_rest(clock: Clock) -> None:
    found = endpoints(2)
    found.failed(found.items[0], 30.0)
    assert rest(found, 0, clock) == 30.0
    found.failed(found.items[1], 600.0)
    assert rest(found, 1, clock) == 60.0  # a server asking for ten minutes gets one
    assert found.seconds_until_usable() == 30.0
    for _ in range(4):
        found.failed(found.items[0], 2.0)  # 5th failure: 15 s, longer than it asks for
    assert rest(found, 0, clock) == 15.0


def test_retry_after_is_read_from_the_headers() -> None:
    assert rpc._retry_after({"Retry-After": "7"}) == 7.0
    assert rpc._retry_after({"Retry-After": "0.5"}) == 0.5
    assert rpc._retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert rpc._retry_after({}) is None


def test_when_every_url_rests_the_one_whose_rest_ends_first_is_picked(clock: Clock) -> None:
    found = endpoints(3)
    found.failed(found.items[0], 9.0)
    found.failed(found.items[1], 3.0)
    found.failed(found.items[2], 5.0)
    assert found.usable() == []
    assert found.pick().index == 1
    assert found.seconds_until_usable() == 3.0
    clock.now += 10
    assert found.seconds_until_usable() == 0.0


def test_success_ends_the_rest_at_once_and_traffic_fails_back(clock: Clock) -> None:
    found = endpoints(2)
    for _ in range(3):
        found.failed(found.items[0], None)
    assert found.pick().index == 1
    found.succeeded(found.items[0])  # e.g. an answer to a request sent before it failed
    assert found.items[0].failures == 0
    assert found.items[0].cooldown_until == 0.0
    assert found.pick().index == 0
    found.failed(found.items[0], None)
    assert rest(found, 0, clock) == 1.0, "the doubling starts over after a success"


def test_down_is_reported_on_the_third_failure_and_up_on_the_next_success(clock: Clock) -> None:
    found = endpoints(2)
    with structlog.testing.capture_logs() as logs:
        for _ in range(4):
            found.failed(found.items[1], None)
        found.succeeded(found.items[1])
        found.succeeded(found.items[1])
    logs = [e for e in logs if e["event"] != "rpc_retry"]
    assert [(e["event"], e["endpoint"]) for e in logs] == [
        ("rpc_endpoint_down", 1),
        ("rpc_endpoint_up", 1),
    ]
    assert logs[0]["rest_s"] == 4.0
    assert logs[1]["after_failures"] == 4


def test_faults_are_warnings_one_line_per_url_per_interval_and_recovery_is_said(
    clock: Clock,
) -> None:
    found = endpoints(1)
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            found.failed(found.items[0], None, "node answered HTTP 503")
        clock.now += 11.0
        found.failed(found.items[0], None, "node answered HTTP 503")
        found.succeeded(found.items[0])
        found.succeeded(found.items[0])
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("rpc_retry", "warning"),
        ("rpc_retry", "warning"),
        ("rpc_recovered", "info"),
    ]
    assert (logs[0]["failures_in_a_row"], logs[0]["faults_not_logged"]) == (1, 0)
    assert (logs[1]["failures_in_a_row"], logs[1]["faults_not_logged"]) == (6, 4)
    assert logs[1]["error"] == "node answered HTTP 503"
    assert logs[2]["after_failures"] == 6


def test_a_single_url_never_rests_unless_the_server_asks(clock: Clock) -> None:
    found = endpoints(1)
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            found.failed(found.items[0], None)
    assert found.items[0].failures == 5
    assert rest(found, 0, clock) == 0.0
    assert found.usable() == found.items
    # Nothing to fail over to: no down/up lines, only the (rate-limited) fault line.
    assert [e["event"] for e in logs] == ["rpc_retry"]
    found.failed(found.items[0], 4.0)
    assert found.usable() == []
    assert found.seconds_until_usable() == 4.0
    assert found.pick().index == 0  # resting or not, it is the only one


def test_behind_lowers_the_known_head_below_the_missing_block(clock: Clock) -> None:
    found = endpoints(2, heads=[None, 50])
    found.behind(found.items[0], 40)
    assert found.items[0].head == 39
    found.behind(found.items[1], 40)  # it said 50, but lacks 40: believe the failure
    assert found.items[1].head == 39
    found.behind(found.items[1], 45)  # already known to be below 45: unchanged
    assert found.items[1].head == 39
    assert found.pick(min_block=40).index == 0  # nobody has it: the first of the most advanced
    found.saw_head(found.items[1], 41)  # it reports more: used again for block 40
    assert found.pick(min_block=40).index == 1


def test_behind_is_logged_only_with_several_urls(clock: Clock) -> None:
    single, several = endpoints(1), endpoints(2)
    with structlog.testing.capture_logs() as logs:
        single.behind(single.items[0], 7)
        several.behind(several.items[1], 7)
    assert [(e["event"], e["endpoint"], e["lacks_block"]) for e in logs] == [
        ("rpc_endpoint_behind", 1, 7)
    ]


def test_another_has_looks_only_at_other_urls_that_are_usable(clock: Clock) -> None:
    found = endpoints(3, heads=[30, 20, 40])
    first, second, third = found.items
    assert found.another_has(first, 35)  # the third has it
    assert not found.another_has(third, 35)  # only the third itself has it
    assert found.another_has(third, 30)
    found.failed(third, None)
    assert not found.another_has(first, 35)  # the third rests
    clock.now += 1
    assert found.another_has(first, 35)
    second.head = None  # unknown head: it may have the block
    assert found.another_has(third, 10**6)


# --- matching answers to calls: rpc._unpack -------------------------------------------------

BLOCK_NUMBER: rpc.Call = ("eth_blockNumber", [])
CHAIN_ID: rpc.Call = ("eth_chainId", [])


def answer(i: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "result": result}


def test_answers_are_matched_by_id_whatever_their_order() -> None:
    payload = [answer(8, "0x1"), answer(7, "0x2a")]
    assert rpc._unpack(payload, [7, 8], [BLOCK_NUMBER, CHAIN_ID]) == ["0x2a", "0x1"]


def test_a_single_call_may_be_answered_by_an_object() -> None:
    assert rpc._unpack(answer(3, "0x10"), [3], [BLOCK_NUMBER]) == ["0x10"]
    assert rpc._unpack([answer(3, None)], [3], [BLOCK_NUMBER]) == [None]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([answer(7, "0x1")], id="one-missing"),
        pytest.param([answer(7, "0x1"), answer(9, "0x2")], id="foreign-id"),
        pytest.param([answer(7, "0x1"), answer(8, "0x2"), answer(8, "0x2")], id="one-twice"),
        pytest.param([answer(7, "0x1"), "0x2"], id="an-item-not-an-object"),
        pytest.param([answer("7", "0x1"), answer(8, "0x2")], id="id-as-a-string"),
        pytest.param([], id="empty"),
    ],
)
def test_a_batch_answer_that_does_not_match_the_calls_is_unavailable(payload: Any) -> None:
    with pytest.raises(RpcUnavailable, match="usable items for 2 calls"):
        rpc._unpack(payload, [7, 8], [BLOCK_NUMBER, CHAIN_ID])


@pytest.mark.parametrize(
    ("payload", "ids"),
    [
        pytest.param(answer(7, "0x1"), [7, 8], id="object-for-a-batch"),
        pytest.param("0x1", [7], id="a-string"),
        pytest.param(None, [7], id="null"),
    ],
)
def test_an_answer_that_is_not_a_list_is_unavailable(payload: Any, ids: list[int]) -> None:
    calls = [BLOCK_NUMBER, CHAIN_ID][: len(ids)]
    with pytest.raises(RpcUnavailable, match="something other than a list"):
        rpc._unpack(payload, ids, calls)


def test_one_error_in_a_batch_fails_the_whole_batch() -> None:
    payload = [answer(7, "0x1"), {"jsonrpc": "2.0", "id": 8, "error": {"code": -32601}}]
    with pytest.raises(RpcError):
        rpc._unpack(payload, [7, 8], [BLOCK_NUMBER, CHAIN_ID])


# --- classifying one answer: rpc._result ------------------------------------------------------


def failure(code: Any, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": 1, "error": error}


def test_a_result_is_returned_even_when_null() -> None:
    assert rpc._result(answer(1, None), "eth_getBlockByNumber") is None
    assert rpc._result(answer(1, []), "eth_getLogs") == []


def test_an_answer_with_neither_result_nor_error_is_unavailable() -> None:
    with pytest.raises(RpcUnavailable, match="eth_chainId: answer has neither result nor error"):
        rpc._result({"jsonrpc": "2.0", "id": 1}, "eth_chainId")


def test_a_refused_log_range_is_range_too_large_with_the_providers_hint() -> None:
    message = "query returned more than 10000 results. Try with this block range [0x10, 0x1f]."
    with pytest.raises(RangeTooLarge) as refused:
        rpc._result(failure(-32005, message), "eth_getLogs")
    assert refused.value.suggested_to == 0x1F
    assert refused.value.ceiling is None
    assert str(refused.value) == f"eth_getLogs refused: {message}"


def test_a_limit_message_states_a_ceiling() -> None:
    with pytest.raises(RangeTooLarge) as refused:
        rpc._result(failure(-32614, "eth_getLogs is limited to a 10,000 range"), "eth_getLogs")
    assert refused.value.suggested_to is None
    assert refused.value.ceiling == 10_000


def test_a_limit_message_is_a_range_limit_only_for_eth_get_logs() -> None:
    message = "query returned more than 10000 results"
    with pytest.raises(RpcUnavailable, match=r"eth_call failed: .* \(code -32005\)"):
        rpc._result(failure(-32005, message), "eth_call")


@pytest.mark.parametrize(
    "message",
    [
        "header not found",
        "Unknown block",
        "block not found",
        "requested block is beyond current head",
        "BlockOutOfRangeError: block height is 13 but requested was 16",
    ],
)
def test_a_block_the_node_lacks_is_not_ready(message: str) -> None:
    with pytest.raises(NotReady, match=f"^eth_getBlockByNumber: {message}$"):
        rpc._result(failure(-32000, message), "eth_getBlockByNumber")


def test_beyond_the_head_for_eth_get_logs_is_a_range_to_shrink() -> None:
    message = "block range extends beyond current head block"
    with pytest.raises(RangeTooLarge) as refused:
        rpc._result(failure(-32602, message), "eth_getLogs")
    assert (refused.value.suggested_to, refused.value.ceiling) == (None, None)
    assert rpc._says_lacking(refused.value)
    with pytest.raises(NotReady):
        rpc._result(failure(-32602, message), "eth_getBlockByNumber")


@pytest.mark.parametrize("code", [-32600, -32601, -32602])
def test_a_malformed_or_unknown_request_is_fatal(code: int) -> None:
    with pytest.raises(RpcError) as refused:
        rpc._result(failure(code, "the method eth_foo does not exist"), "eth_foo")
    assert refused.value.code == code
    assert str(refused.value) == f"eth_foo failed: the method eth_foo does not exist (code {code})"


@pytest.mark.parametrize(
    ("error", "text"),
    [
        ({"code": -32000, "message": "internal error"}, "internal error (code -32000)"),
        ({"code": 429, "message": "rate limited"}, "rate limited (code 429)"),
        ({"message": "no code at all"}, "no code at all (code None)"),
        ("a plain string", "a plain string (code None)"),
    ],
)
def test_any_other_error_is_unavailable_and_retried(error: Any, text: str) -> None:
    with pytest.raises(RpcUnavailable) as failed:
        rpc._result({"jsonrpc": "2.0", "id": 1, "error": error}, "eth_chainId")
    assert str(failed.value) == f"eth_chainId failed: {text}"
    assert rpc.is_retryable(failed.value)
    assert not rpc.is_retryable(RpcError("fatal", code=-32601))


def test_only_null_headers_asked_for_by_number_count_as_missing() -> None:
    calls: list[rpc.Call] = [
        ("eth_getBlockByNumber", ["0xa", False]),
        ("eth_getBlockByNumber", ["0x9", False]),
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_getLogs", [{}]),
    ]
    assert rpc._first_missing(calls, [None, None, None, None]) == 9
    assert rpc._first_missing(calls, [None, {"number": "0x9"}, None, None]) == 10
    assert rpc._first_missing(calls, [{}, {}, None, None]) is None


# --- parsing logs: source.parse_logs ---------------------------------------------------------

HASH_10 = b"\x10" * 32
TX = b"\x7a" * 32
CONTRACT = b"\xc0" * 20
TOPIC = b"\x01" * 32


def raw_log(
    block: int = 10, index: int = 0, *, block_hash: bytes = HASH_10, **extra: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "blockNumber": hex(block),
        "blockHash": "0x" + block_hash.hex(),
        "transactionHash": "0x" + TX.hex(),
        "logIndex": hex(index),
        "address": "0x" + CONTRACT.hex(),
        "topics": ["0x" + TOPIC.hex()],
        "data": "0x00ff",
    }
    item.update(extra)
    return item


def test_logs_are_parsed_into_raw_logs() -> None:
    logs = parse_logs([raw_log(10, 0), raw_log(10, 1, removed=True), raw_log(10, 2, topics=[])])
    assert logs[0] == RawLog(10, HASH_10, TX, 0, CONTRACT, (TOPIC,), b"\x00\xff", False)
    assert logs[1].removed is True
    assert logs[2].topics == ()
    assert logs[0].block_hash is logs[1].block_hash, "a repeated hash is converted once"
    assert parse_logs([]) == []


def test_only_a_json_true_marks_a_log_removed() -> None:
    assert [g.removed for g in parse_logs([raw_log(removed="true"), raw_log(removed=1)])] == [
        False,
        False,
    ]


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({k: v for k, v in raw_log().items() if k != "transactionHash"}, id="missing"),
        pytest.param(raw_log(data="0xnot-hex"), id="bad-hex-data"),
        pytest.param(raw_log(blockNumber="ten"), id="bad-number"),
        pytest.param(raw_log(blockNumber=None), id="null-number"),
        pytest.param(raw_log(topics=7), id="topics-not-a-list"),
        pytest.param(raw_log(topics=[7]), id="topic-not-a-string"),
        pytest.param(raw_log(address=None), id="null-address"),
        pytest.param("0xabc", id="not-an-object"),
        pytest.param(None, id="null"),
    ],
)
def test_an_unparsable_log_is_an_inconsistent_response(item: Any) -> None:
    with pytest.raises(InconsistentResponse, match="eth_getLogs returned an unparsable log"):
        parse_logs([raw_log(10, 0), item])


# --- checking a range: source._require_headers and source._validate -------------------------


def header(number: int, *, parent: bytes | None = None, salt: int = 0) -> BlockRef:
    return BlockRef(
        number=number,
        hash=bytes([number, salt]) * 16,
        parent_hash=parent if parent is not None else bytes([number - 1, salt]) * 16,
        timestamp=1_700_000_000 + number,
    )


def chain_of(first: int, last: int) -> dict[int, BlockRef]:
    return {n: header(n) for n in range(first, last + 1)}


def log_in(
    headers: dict[int, BlockRef],
    block: int,
    index: int,
    *,
    block_hash: bytes | None = None,
    removed: bool = False,
) -> RawLog:
    """A log of `block`, naming the hash of its header unless told otherwise."""
    named = headers[block].hash if block_hash is None else block_hash
    return RawLog(block, named, TX, index, CONTRACT, (TOPIC,), b"", removed)


def as_raw(block: BlockRef) -> dict[str, Any]:
    return {
        "number": hex(block.number),
        "hash": "0x" + block.hash.hex(),
        "parentHash": "0x" + block.parent_hash.hex(),
        "timestamp": hex(block.timestamp),
    }


def test_headers_are_required_for_every_number_asked_for() -> None:
    blocks = chain_of(10, 12)
    found = _require_headers([10, 11, 12], [as_raw(blocks[10]), blocks[11], as_raw(blocks[12])])
    assert found == blocks


def test_a_missing_header_is_not_ready() -> None:
    blocks = chain_of(10, 12)
    with pytest.raises(NotReady, match=r"^node has no block 11 yet$"):
        _require_headers([10, 11, 12], [as_raw(blocks[10]), None, as_raw(blocks[12])])


def test_a_header_for_another_number_is_inconsistent() -> None:
    blocks = chain_of(10, 12)
    with pytest.raises(InconsistentResponse, match=r"^asked for block 11, got 12$"):
        _require_headers([10, 11], [as_raw(blocks[10]), as_raw(blocks[12])])


def test_a_consistent_range_passes() -> None:
    blocks = chain_of(10, 12)
    logs = [log_in(blocks, 10, 0), log_in(blocks, 10, 1), log_in(blocks, 12, 0)]
    _validate(10, 12, logs, blocks)  # raises nothing
    _validate(10, 12, [], blocks)  # raises nothing


def test_a_removed_log_is_inconsistent() -> None:
    blocks = chain_of(10, 12)
    logs = [log_in(blocks, 10, 0), log_in(blocks, 11, 4, removed=True)]
    with pytest.raises(InconsistentResponse, match=r"^log \(11, 4\) is marked removed"):
        _validate(10, 12, logs, blocks)


@pytest.mark.parametrize("block", [9, 13])
def test_a_log_outside_the_range_is_inconsistent(block: int) -> None:
    blocks = chain_of(9, 13)
    with pytest.raises(InconsistentResponse, match=rf"^log \({block}, 0\) is outside 10\.\.12$"):
        _validate(10, 12, [log_in(blocks, 11, 0), log_in(blocks, block, 0)], blocks)


def test_a_log_twice_is_inconsistent() -> None:
    blocks = chain_of(10, 12)
    logs = [log_in(blocks, 10, 0), log_in(blocks, 11, 3), log_in(blocks, 11, 3)]
    with pytest.raises(InconsistentResponse, match=r"^log \(11, 3\) appears twice: the answer"):
        _validate(10, 12, logs, blocks)


def test_a_duplicate_that_is_not_next_to_itself_is_inconsistent() -> None:
    blocks = chain_of(10, 12)
    logs = [log_in(blocks, 10, 0), log_in(blocks, 11, 3), log_in(blocks, 12, 0)]
    logs.append(logs[1])
    with pytest.raises(InconsistentResponse, match=r"^log \(11, 3\) comes after \(12, 0\)"):
        _validate(10, 12, logs, blocks)


def test_logs_out_of_order_within_a_block_are_inconsistent() -> None:
    blocks = chain_of(10, 12)
    logs = [log_in(blocks, 11, 4), log_in(blocks, 11, 2)]
    with pytest.raises(InconsistentResponse, match="out of order"):
        _validate(10, 12, logs, blocks)


def test_a_log_naming_another_block_hash_is_inconsistent() -> None:
    blocks = chain_of(10, 12)
    logs = [log_in(blocks, 10, 0), log_in(blocks, 11, 0, block_hash=b"\xee" * 32)]
    with pytest.raises(InconsistentResponse, match="header for 11 lacks"):
        _validate(10, 12, logs, blocks)


def test_headers_that_do_not_link_are_inconsistent() -> None:
    blocks = chain_of(10, 12)
    blocks[12] = header(12, parent=header(11, salt=1).hash)  # child of another block 11
    with pytest.raises(InconsistentResponse, match=r"^block 12 does not link to block 11$"):
        _validate(10, 12, [], blocks)


def test_only_neighbouring_headers_held_are_linked() -> None:
    blocks = chain_of(10, 14)
    del blocks[12]  # 11 and 13 are not neighbours: nothing to check between them
    blocks[13] = header(13, parent=b"\xab" * 32)
    _validate(10, 14, [], blocks)  # raises nothing
    blocks[14] = header(14, parent=b"\xab" * 32)
    with pytest.raises(InconsistentResponse, match=r"^block 14 does not link to block 13$"):
        _validate(10, 14, [], blocks)


# --- the logsBloom: source._in_bloom and source._bloom_bits ---------------------------------


def bloom_of(items: list[bytes]) -> bytes:
    """A 2048-bit logsBloom by the yellow paper's rule (4.3.1): for each item, the low 11
    bits of each of the first three byte pairs of keccak(item) index a bit, counted from
    the low end of the bloom read as one big-endian number."""
    bits = 0
    for item in items:
        digest = keccak(item)
        for i in (0, 2, 4):
            bits |= 1 << ((digest[i] << 8 | digest[i + 1]) & 2047)
    return bits.to_bytes(256, "big")


def addresses(rng: random.Random, n: int) -> list[bytes]:
    return [rng.randbytes(20) for _ in range(n)]


def test_the_bits_of_one_item_are_those_the_rule_sets() -> None:
    for item in addresses(random.Random(3), 50):
        bloom = bloom_of([item])
        assert 1 <= sum(bin(b).count("1") for b in bloom) <= 3
        from_bits = bytearray(256)
        for byte, mask in _bloom_bits(item):
            from_bits[byte] |= mask
        assert bytes(from_bits) == bloom


def test_every_member_is_found() -> None:
    members = addresses(random.Random(5), 200)
    bloom = bloom_of(members)
    assert all(_in_bloom(bloom, a) for a in members)
    assert all(_in_bloom(bloom_of([a]), a) for a in members)


def test_an_empty_bloom_holds_nothing_and_a_full_one_everything() -> None:
    sample = addresses(random.Random(7), 100)
    assert not any(_in_bloom(bytes(256), a) for a in sample)
    assert all(_in_bloom(b"\xff" * 256, a) for a in sample)


@pytest.mark.parametrize("length", [0, 32, 255, 257, 512])
def test_a_bloom_of_the_wrong_length_says_maybe(length: int) -> None:
    assert _in_bloom(bytes(length), b"\x42" * 20) is True


def test_a_non_member_is_usually_absent() -> None:
    """With 100 members a bloom has at most 300 of 2048 bits set, so a non-member is a
    false positive with probability under (300/2048)**3 < 0.32 %. The sample is seeded, so
    the count is always the same (58 of 20,000); the 1 % bound is three times the rate's
    ceiling, far above what any seed would give."""
    rng = random.Random(11)
    members = addresses(rng, 100)
    bloom = bloom_of(members)
    known = set(members)
    strangers = [a for a in addresses(rng, 20_000) if a not in known]
    false_positives = sum(_in_bloom(bloom, a) for a in strangers)
    assert len(strangers) == 20_000
    assert false_positives / len(strangers) < 0.01, false_positives


def test_blooms_are_taken_from_the_headers_that_carry_one() -> None:
    bloom = bloom_of([CONTRACT])
    raws = [
        {"number": "0xa", "logsBloom": "0x" + bloom.hex()},
        {"number": "0xb"},
        None,
        {"number": "0xc", "logsBloom": None},
    ]
    assert _blooms(raws) == {10: bloom}


def test_a_node_mid_reorg_refusing_get_logs_beyond_its_height_is_not_ready_not_fatal() -> None:
    """anvil during a reorg answers -32602 (invalid params, otherwise fatal) for a range
    above the height it has at that instant: the block comes back, so it is waited out."""
    message = "BlockOutOfRangeError: block height is 13 but requested was 16"
    with pytest.raises(NotReady):
        rpc._result(
            failure(-32602, message), "eth_getLogs", [{"fromBlock": "0xc", "toBlock": "0x10"}]
        )
