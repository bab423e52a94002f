"""Killable helper processes for jq expressions that may not terminate.

The jq binding holds the GIL while it evaluates, so a runaway expression (``[range(1e12)]``)
would freeze every run of the worker. Such expressions go to a helper process instead: it is
killed when its deadline passes and a fresh one is started on the next use, while the worker's
event loop keeps serving other runs. Helpers speak one JSON line per request and answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

_LINE_LIMIT = 64 * 1024 * 1024


class _Helper:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    def alive(self) -> bool:
        return self.process.returncode is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class Sandbox:
    """A small pool of helper processes evaluating wrapped jq programs with a deadline.

    Args:
        size: at most this many helpers run at once; more evaluations wait for one.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._idle: list[_Helper] = []
        self._slots = asyncio.Semaphore(size)
        self._all: set[_Helper] = set()
        self._reapers: set[asyncio.Future[int]] = set()

    async def evaluate(self, program: str, value: Any, args: dict[str, Any], timeout: float) -> Any:
        """Run ``program`` over ``[value, args]``; raise a timeout TaskError past ``timeout``."""
        from opsloom.expr.evaluator import ExpressionError

        request = json.dumps({"program": program, "input": [value, args]}).encode() + b"\n"
        # A helper can die between evaluations (a signal to the process group, the OOM
        # killer): evaluation is pure, so it runs once more on a fresh helper.
        for attempt in (1, 2):
            line = await self._ask(program, request, timeout)
            if line is not None:
                break
            if attempt == 2:
                raise ExpressionError("the expression helper process ended unexpectedly")
        assert line is not None
        answer = json.loads(line)
        if "error" in answer:
            raise ExpressionError(str(answer["error"]))
        return answer.get("result")

    async def _ask(self, program: str, request: bytes, timeout: float) -> bytes | None:
        """One request to a helper; None when the helper was found dead."""
        from opsloom.expr.evaluator import ExpressionTimeoutError

        async with self._slots:
            helper = await self._take()  # starting a helper does not count against the deadline
            try:
                async with asyncio.timeout(timeout):
                    assert helper.process.stdin is not None and helper.process.stdout is not None
                    helper.process.stdin.write(request)
                    await helper.process.stdin.drain()
                    line = await helper.process.stdout.readline()
            except TimeoutError:
                self._discard(helper)
                raise ExpressionTimeoutError(_body(program), timeout) from None
            except (BrokenPipeError, ConnectionResetError, RuntimeError):
                # Writing to a helper that has exited ("the handler is closed").
                self._discard(helper)
                return None
            except BaseException:
                self._discard(helper)
                raise
            if not line:
                self._discard(helper)
                return None
            self._idle.append(helper)
            return line

    async def _take(self) -> _Helper:
        while self._idle:
            helper = self._idle.pop()
            if helper.alive():
                return helper
            self._all.discard(helper)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HELPER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
            # Nothing of the worker's environment (tokens, passwords) reaches the helper.
            env={k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH")},
        )
        helper = _Helper(process)
        self._all.add(helper)
        return helper

    def _discard(self, helper: _Helper) -> None:
        helper.kill()
        self._all.discard(helper)
        # Reap it in the background so no zombie is left behind.
        reaper = asyncio.ensure_future(helper.process.wait())
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)

    async def close(self) -> None:
        """Stop every helper."""
        helpers = list(self._all)
        self._all.clear()
        self._idle.clear()
        for helper in helpers:
            if helper.process.stdin is not None:
                helper.process.stdin.close()
            helper.kill()
        for helper in helpers:
            with contextlib.suppress(ProcessLookupError):
                await helper.process.wait()
        if self._reapers:
            await asyncio.gather(*self._reapers, return_exceptions=True)


def _body(program: str) -> str:
    # The wrapped program ends with ``| (body)``: show what the author wrote.
    start = program.find("| .[0] | (")
    return program[start + 10 : -1] if start >= 0 else program


# The helper's program: it imports only jq (not opsloom) so that it starts fast.
_HELPER = """
import json, sys
import jq
cache = {}
for line in sys.stdin:
    try:
        request = json.loads(line)
        text = request["program"]
        program = cache.get(text)
        if program is None:
            program = cache[text] = jq.compile(text)
        result = None
        for item in program.input_text(json.dumps(request["input"])):
            result = item
            break
        answer = {"result": result}
    except Exception as exc:
        answer = {"error": str(exc).replace("jq: error: ", "")}
    sys.stdout.write(json.dumps(answer) + "\\n")
    sys.stdout.flush()
"""
