"""``run``: shell commands, scripts (python, js) and containers, as local processes.

Trust: a document that may run processes runs code on the worker, so a :class:`ProcessPolicy`
says which documents may (by default only those the operator registers from code or files, not
those deployed over the API), which programs, and as which uid. The process environment of the
worker is not inherited beyond ``PATH``, ``HOME`` and ``LANG``: a document gets what its
``environment`` gives, so the API token, signing secrets and undeclared secrets of the worker
never reach a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    """Which documents may start local processes, which programs, as which uid.

    Attributes:
        mode: ``none``, ``registered`` (documents registered in this process from code or
            files, not deployed ones) or ``all``.
        commands: when not empty, the only programs allowed (a shell command's first word, a
            script's language, a container's image).
        user: the uid processes run as (None: the worker's).
    """

    mode: str = "registered"
    commands: frozenset[str] = frozenset()
    user: int | None = None

    @classmethod
    def of(cls, mode: str, commands: Sequence[str], user: int | None) -> ProcessPolicy:
        return cls(mode, frozenset(commands), user)

    def check(self, kind: str, program: str, *, deployed: bool) -> None:
        """Refuse (a ``configuration`` task error) what this policy does not allow."""
        if self.mode == "none" or (self.mode == "registered" and deployed):
            which = "any document" if self.mode == "none" else "deployed documents"
            raise TaskError.standard(
                "configuration",
                f"run.{kind} is disabled for {which} here (OPSLOOM_RUN_PROCESSES={self.mode})",
                title="Processes disabled",
            )
        if self.commands and program not in self.commands:
            raise TaskError.standard(
                "configuration",
                f"run.{kind} may not start {program!r} here (not in OPSLOOM_PROCESS_COMMANDS)",
                title="Program not allowed",
            )


#: Drops the worker's groups and switches to the uid in argv[1], then runs the rest of argv.
_AS_USER = (
    "import os, sys; uid = int(sys.argv[1]); os.setgroups([]); os.setgid(uid); "
    "os.setuid(uid); os.execvp(sys.argv[2], sys.argv[2:])"
)


def _first_word(command: str) -> str:
    words = command.split()
    return os.path.basename(words[0]) if words else ""


_INTERPRETERS = {"python": (sys.executable,), "js": ("node",), "javascript": ("node",)}


def container_runtime() -> str | None:
    """The container command available here (docker or podman), or None."""
    for name in ("docker", "podman"):
        if shutil.which(name):
            return name
    return None


def script_interpreter(language: str) -> tuple[str, ...] | None:
    """The command that runs scripts in ``language`` here, or None."""
    command = _INTERPRETERS.get(language.lower())
    if command is None or (command[0] != sys.executable and shutil.which(command[0]) is None):
        return None
    return command


async def run_process(
    interp: Interpreter, spec: dict[str, Any], value: Any, names: Mapping[str, Any]
) -> Any:
    """Run the process a ``run`` task describes; its output per ``run.return``."""
    returns = spec.get("return", "stdout")
    wait = spec.get("await", True)
    policy: ProcessPolicy = interp.runtime.options.processes
    user = policy.user
    if "shell" in spec:
        shell = await interp.render(spec["shell"], value, names)
        command_text = str(shell["command"])
        policy.check("shell", _first_word(command_text), deployed=interp.deployed)
        if policy.commands and any(c in command_text for c in ";&|`$<>()\n"):
            # With an allow-list, one plain command: no second one chained after it.
            raise TaskError.standard(
                "configuration",
                "run.shell with OPSLOOM_PROCESS_COMMANDS takes one plain command "
                "(no ; & | ` $ < > ( ) or newlines)",
                title="Program not allowed",
            )
        argv = ["/bin/sh", "-c", str(shell["command"]), "sh", *_arguments(shell)]
        stdin, env = shell.get("stdin"), shell.get("environment")
    elif "script" in spec:
        script = await interp.render(spec["script"], value, names)
        policy.check("script", str(script.get("language", "")), deployed=interp.deployed)
        command = script_interpreter(str(script.get("language", "")))
        if command is None:
            raise TaskError.standard(
                "validation", f"no interpreter for {script.get('language')!r} scripts here"
            )
        code = script.get("code")
        if code is None:
            raise TaskError.standard("configuration", "run.script needs inline code here")
        return await _run_script(command, str(code), script, returns, wait, user)
    elif "container" in spec:
        container = await interp.render(spec["container"], value, names)
        policy.check("container", str(container.get("image", "")), deployed=interp.deployed)
        runtime = container_runtime()
        if runtime is None:
            raise TaskError.standard(
                "validation", "run.container needs docker or podman, and neither is installed"
            )
        argv = [runtime, "run", "--rm", "-i"]
        for key, val in (container.get("environment") or {}).items():
            argv += ["-e", f"{key}={val}"]
        if container.get("name"):
            argv += ["--name", str(container["name"])]
        argv.append(str(container["image"]))
        if container.get("command"):
            argv += ["sh", "-c", str(container["command"])]
        argv += _arguments(container)
        stdin, env = container.get("stdin"), None
    else:
        raise TaskError.standard("validation", "run needs a shell, script, container or workflow")
    return await execute(argv, stdin, env, returns, wait, user)


def _arguments(spec: Mapping[str, Any]) -> list[str]:
    args = spec.get("arguments") or []
    if isinstance(args, dict):
        return [f"{k}={v}" if v is not None else str(k) for k, v in args.items()]
    return [str(a) for a in args]


async def _run_script(
    command: tuple[str, ...],
    code: str,
    script: dict[str, Any],
    returns: str,
    wait: bool,
    user: int | None,
) -> Any:
    suffix = ".mjs" if command[0] == "node" else ".py"
    with tempfile.TemporaryDirectory(prefix="opsloom-script-") as folder:
        path = Path(folder) / f"script{suffix}"
        path.write_text(code, encoding="utf-8")  # small: not worth a thread
        if user is not None:
            os.chmod(folder, 0o755)
            path.chmod(0o644)
        argv = [*command, str(path), *_arguments(script)]
        env = script.get("environment")
        return await execute(argv, script.get("stdin"), env, returns, wait, user)


async def execute(
    argv: list[str],
    stdin: Any,
    env: Mapping[str, Any] | None,
    returns: str,
    wait: bool = True,
    user: int | None = None,
) -> Any:
    """Run ``argv``; a non-zero exit is a ``runtime`` error unless ``return`` is code/all/none."""
    environment = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    environment.update({str(k): str(v) for k, v in (env or {}).items()})
    # Without input the command gets /dev/null: writing an empty input to a command that has
    # already exited fails on some event loops (uvloop: "the handler is closed").
    if user is not None:
        # Switch uid in a small launcher: uvloop's subprocesses take no ``user`` argument.
        argv = [sys.executable, "-c", _AS_USER, str(user), *argv]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
        # Its own process group: a timeout or cancel stops the command and all it started.
        start_new_session=True,
    )
    data = None if stdin is None else (stdin if isinstance(stdin, str) else str(stdin)).encode()
    if not wait:
        if process.stdin is not None and data is not None:
            process.stdin.write(data)
            process.stdin.close()
        return None
    try:
        out, err = await process.communicate(data)
    except BaseException:
        # A task timeout or a cancel: the process must not outlive its task.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.shield(process.wait())
        raise
    code = process.returncode
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if returns == "all":
        return {"code": code, "stdout": stdout, "stderr": stderr}
    if returns == "code":
        return code
    if returns == "none":
        return None
    if code != 0:
        raise TaskError.standard(
            "runtime",
            f"process exited with code {code}: {stderr.strip()[-500:]}",
            title="Process failed",
        )
    return stderr if returns == "stderr" else stdout
