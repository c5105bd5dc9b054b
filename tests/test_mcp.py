"""MCP servers' tools through ``ToolBox`` (``openmuse.tools.mcp``): a real MCP server built on the
``mcp`` SDK (``tests/mcp_server_fixture.py``) reached over stdio (spawned from the config file)
and over streamable HTTP (started on a free loopback port), listed, called, timed out, failing
and injecting; bad config files and unreachable servers; stdio children gone after ``close``.
Offline, CPU only, well under a minute. Run: `.venv/bin/pytest -q tests/test_mcp.py`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from openmuse.errors import ConfigError
from openmuse.functions.spec import NAME
from openmuse.tools.base import ToolBox, ToolSettings, close_mcp
from openmuse.tools.mcp import GRACE_S, load_servers, read_config, tool_name
from openmuse.types import ToolCall

from .conftest import free_port
from .mcp_server_fixture import INJECTED

FIXTURE = str(Path(__file__).with_name("mcp_server_fixture.py"))
LIMIT = 1.5  # ToolSettings.timeout_s for these tests
TOOLS = {"add", "shout", "fail", "leak", "slow", "pid", "pixel"}


def write_config(tmp: Path, servers: dict) -> Path:
    path = tmp / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def stdio_entry(**extra) -> dict:
    return {"command": sys.executable, "args": [FIXTURE], **extra}


def call(box: ToolBox, name: str, **args):
    return box.call(ToolCall(id="c1", name=name, arguments=json.dumps(args)))


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def http_url(tmp_path_factory):
    """The fixture server over streamable HTTP on a free loopback port: its /mcp URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, FIXTURE, "http", str(port)], stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the MCP server exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("the MCP server did not start in 60 s") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module", params=["stdio", "http"])
def box(request, tmp_path_factory):
    """A ToolBox with the calculator and the fixture server's tools as server ``fx``."""
    entry = stdio_entry() if request.param == "stdio" else {"url": request.getfixturevalue("http_url")}
    path = write_config(tmp_path_factory.mktemp(f"mcp-{request.param}"), {"fx": entry})
    tb = ToolBox.load(["calculator"], ToolSettings(mcp_config=path, timeout_s=LIMIT))
    yield tb
    tb.close()
    close_mcp()  # the servers stay connected across requests: close them for the next params


def test_tools_are_listed_with_their_specs(box):
    assert set(box.names) == {"calculator"} | {f"fx__{t}" for t in TOOLS}
    specs = {s.name: s for s in box.specs()}
    assert all(NAME.match(n) for n in specs)
    add = specs["fx__add"]
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.to_openai()["function"]["name"] == "fx__add"


def test_call_returns_text(box):
    obs = box.call(ToolCall(id="c1", name="fx__add", arguments='{"a": 2, "b": 3}'))
    assert obs.ok and obs.text == "5" and obs.flags == []
    assert call(box, "fx__shout", text="hi").text == "HI!"
    assert call(box, "calculator", expression="2+3").text.endswith("5")


def test_calls_from_many_threads(box):
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: call(box, "fx__add", a=i, b=1), range(16)))
    assert [o.text for o in outs] == [str(i + 1) for i in range(16)]


def test_bad_arguments_are_refused_before_the_server(box):
    obs = call(box, "fx__add", a="two", b=3)
    assert not obs.ok and "bad arguments" in obs.text


def test_tool_error_reaches_the_model(box):
    obs = call(box, "fx__fail")
    assert not obs.ok and "the fixture failed on purpose" in obs.text
    assert obs.for_model().startswith("error: ")


def test_injected_instruction_is_flagged(box):
    obs = call(box, "fx__leak")
    assert obs.ok and obs.text == INJECTED
    assert obs.flags and obs.flags[0].startswith("injection: ")


def test_non_text_content_is_described(box):
    obs = call(box, "fx__pixel")
    assert obs.ok and obs.text.splitlines() == ["a red dot", "[image: image/png, about 69 bytes]"]


def test_timeout_ends_the_call_and_the_session_goes_on(box):
    obs = call(box, "fx__slow", seconds=30)
    assert not obs.ok and f"ran past its {LIMIT:g} s limit" in obs.text
    assert obs.ms < (LIMIT + GRACE_S + 1) * 1000
    assert call(box, "fx__add", a=1, b=1).text == "2"


def test_close_ends_the_stdio_child(tmp_path):
    tb = ToolBox.load(["calculator"], ToolSettings(mcp_config=write_config(tmp_path, {"fx": stdio_entry()})))
    pid = int(call(tb, "fx__pid").text)
    assert alive(pid)
    tb.close()
    assert alive(pid)  # a request's box leaves the shared servers connected for the next one
    close_mcp()
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    obs = call(tb, "fx__add", a=1, b=2)
    assert not obs.ok and "closed" in obs.text
    tb.close()
    close_mcp()  # twice is harmless


def test_two_servers_and_disabled_entries(tmp_path):
    path = write_config(tmp_path, {"one": stdio_entry(), "two.b": stdio_entry(),
                                   "off": {"command": "no-such-command", "disabled": True}})
    tools = load_servers(path, ToolSettings())
    try:
        names = {t.name for t in tools}
        assert {"one__add", "two_b__add"} <= names and not any(n.startswith("off") for n in names)
        assert next(t for t in tools if t.name == "two_b__add").call(a=4, b=5) == "9"
    finally:
        for t in tools:
            t.close()


def test_names_that_collide_after_cleaning_are_refused(tmp_path):
    path = write_config(tmp_path, {"a.b": stdio_entry(), "a_b": stdio_entry()})
    with pytest.raises(ConfigError, match="both become 'a_b__add'"):
        load_servers(path, ToolSettings())


def test_tool_names_fit_openai():
    assert tool_name("files", "read_file") == "files__read_file"
    assert tool_name("my server", "get.weather/now") == "my_server__get_weather_now"
    long = tool_name("s" * 40, "t" * 40)
    assert len(long) == 64 and NAME.match(long) and long != tool_name("s" * 40, "t" * 39 + "u")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("{not json", "not valid JSON"),
    ('{"servers": {}}', '"mcpServers"'),
    ('{"mcpServers": {"x": "python"}}', "server 'x': expected an object"),
    ('{"mcpServers": {"x": {}}}', "server 'x': needs exactly one of"),
    ('{"mcpServers": {"x": {"command": "a", "url": "http://h/mcp"}}}', "server 'x': needs exactly one of"),
    ('{"mcpServers": {"x": {"command": "a", "args": "b c"}}}', "server 'x': \"args\" must be a list"),
    ('{"mcpServers": {"x": {"command": "a", "env": {"K": 1}}}}', "server 'x': \"env\" must be an object"),
    ('{"mcpServers": {"x": {"url": "ftp://h/mcp"}}}', "server 'x': \"url\" must start with"),
    ('{"mcpServers": {"x": {"url": "http://h/sse", "type": "sse"}}}', "server 'x': the SSE transport"),
    ('{"mcpServers": {"x": {"command": "a", "timeout": 0}}}', "server 'x': \"timeout\""),
])
def test_bad_config_file(tmp_path, content, message):
    path = tmp_path / "mcp.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        ToolBox.load(["calculator"], ToolSettings(mcp_config=path))
    text = str(err.value)
    assert message in text and "mcp.json" in text and "\n" not in text


def test_relative_cwd_is_taken_from_the_file(tmp_path):
    (cfg,) = read_config(write_config(tmp_path, {"x": {"command": "a", "cwd": "sub"}}))
    assert Path(cfg.cwd) == tmp_path / "sub"


@pytest.mark.parametrize("entry, reason", [
    ({"command": "openmuse-no-such-command"}, "No such file"),
    ({"command": sys.executable, "args": ["-c", "import sys; sys.exit('fixture: bad token')"]},
     "stderr: fixture: bad token"),
    ({"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"], "timeout": 1}, "no answer in 1 s"),
    ({"url": "http://127.0.0.1:{port}/mcp", "timeout": 5}, "connect"),
])
def test_unreachable_server(tmp_path, entry, reason):
    if "url" in entry:
        entry = {**entry, "url": entry["url"].format(port=free_port())}
    path = write_config(tmp_path, {"broken": entry})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(ConfigError) as err:
        ToolBox.load(["calculator"], ToolSettings(mcp_config=path))
    text = str(err.value)
    assert text.startswith("MCP server 'broken'") and reason.lower() in text.lower() and "\n" not in text
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and alive(p.pid)]
    assert left == []
