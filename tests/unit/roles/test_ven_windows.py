"""The Windows tasks of role microseg.illumio.ven, checked without a Windows host (no pwsh here either).

What is checked: the activation code reaches the host only as a win_powershell parameter of a no_log task and,
inside PowerShell, only as an argument of pair.ps1 / illumio-ven-ctl.ps1 called with `&` in the same process;
the pairing script's URL and options follow the documented one-liner; the activate-options filter gives the
Windows syntax; the PowerShell files are balanced and use every parameter they declare; the states' `when`
conditions leave a VEN already paired with the wanted PCE alone; and ansible-playbook accepts every Windows
task file (when ansible.windows is available; tools/fetch_ansible_windows.py puts it in .build/collections).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.microseg.illumio.plugins.filter.ven_activate_arguments import ven_activate_arguments

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "ven"
TASKS = ROLE / "tasks" / "windows"
POWERSHELL = ROLE / "files" / "windows"
CODE_VARIABLE = "__ven_activation_code"
# Modules that start a process from a command line: none of the Windows tasks may use them.
COMMAND_MODULES = {
    "command",
    "shell",
    "raw",
    "script",
    "win_command",
    "win_shell",
    "psexec",
    "win_psexec",
}
TASK_KEYWORDS = {
    "name",
    "when",
    "register",
    "no_log",
    "vars",
    "loop",
    "loop_control",
    "changed_when",
    "failed_when",
    "check_mode",
    "environment",
    "delegate_to",
    "run_once",
    "tags",
    "become",
    "ignore_errors",
    "block",
    "rescue",
    "always",
}


# --- helpers -------------------------------------------------------------------------------------------------
def task_files() -> list[Path]:
    return sorted(TASKS.glob("*.yml"))


def walk(tasks):
    for task in tasks or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from walk(task.get(section))


def all_tasks():
    for path in task_files():
        for task in walk(yaml.safe_load(path.read_text())):
            yield path.name, task


def module_of(task) -> str:
    names = [key for key in task if key not in TASK_KEYWORDS]
    assert len(names) == 1, f"cannot tell the module of {task.get('name')}: {names}"
    return names[0]


def short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def task_named(file_name: str, name: str):
    for path_name, task in all_tasks():
        if path_name == file_name and task.get("name") == name:
            return task
    raise AssertionError(f"no task {name!r} in {file_name}")


def strip_powershell(text: str) -> str:
    """The script without comments and string contents (kept as empty quotes), for bracket counting."""
    out, i, n = [], 0, len(text)
    while i < n:
        two = text[i : i + 2]
        if two == "<#":
            end = text.find("#>", i + 2)
            assert end >= 0, "unterminated <# comment"
            i = end + 2
        elif text[i] == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif two in ("@'", '@"') and text[i + 2 : i + 3] == "\n":
            closing = "\n" + two[1] + "@"
            end = text.find(closing, i + 2)
            assert end >= 0, "unterminated here-string"
            out.append("''")
            i = end + len(closing)
        elif text[i] == "'":
            i += 1
            while True:
                assert i < n, "unterminated '...' string"
                if text[i] == "'" and text[i + 1 : i + 2] == "'":
                    i += 2
                elif text[i] == "'":
                    i += 1
                    break
                else:
                    i += 1
            out.append("''")
        elif text[i] == '"':
            i += 1
            while True:
                assert i < n, 'unterminated "..." string'
                if text[i] == "`" or text[i : i + 2] == '""':
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    i += 1
            out.append('""')
        elif text[i] == "`":
            out.append(text[i : i + 2])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def check_balanced(code: str) -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    for number, line in enumerate(code.splitlines(), 1):
        for char in line:
            if char in "([{":
                stack.append((char, number))
            elif char in pairs:
                assert stack, f"line {number}: {char} closes nothing"
                opened, at = stack.pop()
                assert opened == pairs[char], f"line {number}: {char} closes {opened} of line {at}"
    assert not stack, f"unclosed {stack}"


def param_block(code: str) -> tuple[str, str]:
    """(the script's own param(...) block, the code after it); code is already stripped of strings/comments."""
    match = re.search(r"^param\s*\(", code, re.MULTILINE | re.IGNORECASE)
    assert match, "no top-level param ( ... ) block"
    depth, i = 0, match.end() - 1
    while True:
        depth += {"(": 1, ")": -1}.get(code[i], 0)
        if depth == 0:
            return code[match.end() : i], code[i + 1 :]
        i += 1


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def render(text: str, **variables):
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(text))


def condition(text, **variables) -> bool:
    templar = Templar(loader=DataLoader(), variables=variables)
    conditions = text if isinstance(text, list) else [text]
    return all(templar.evaluate_conditional(trust_as_template(str(item))) for item in conditions)


# --- the activation code ----------------------------------------------------------------------------------------
def test_there_are_windows_task_files_for_every_state():
    names = {path.name for path in task_files()}
    assert {"main.yml", "activated.yml", "prepared.yml", "suspended.yml", "deactivated.yml", "absent.yml"} <= names


def test_every_task_with_the_activation_code_is_no_log_and_passes_it_only_as_a_parameter():
    seen = 0
    for file_name, task in all_tasks():
        if CODE_VARIABLE not in yaml.safe_dump(task):
            continue
        seen += 1
        where = f"{file_name}: {task.get('name')}"
        assert task.get("no_log") is True, f"{where} handles the activation code without no_log: true"
        assert module_of(task) == "ansible.windows.win_powershell", where
        arguments = task["ansible.windows.win_powershell"]
        assert CODE_VARIABLE not in yaml.safe_dump({k: v for k, v in arguments.items() if k != "parameters"}), where
        assert "arguments" not in arguments and "executable" not in arguments, f"{where} starts another process"
        outside = {key: value for key, value in task.items() if key != "ansible.windows.win_powershell"}
        assert CODE_VARIABLE not in yaml.safe_dump(outside), f"{where} uses the code outside the module's parameters"
        assert arguments["parameters"]["ActivationCode"] == "{{ __ven_activation_code }}", where
        others = {key: value for key, value in arguments["parameters"].items() if key != "ActivationCode"}
        assert CODE_VARIABLE not in yaml.safe_dump(others), where
    # pairing script, activate and prepare
    assert seen == 3


def test_no_windows_task_runs_a_command_line():
    for file_name, task in all_tasks():
        assert short(module_of(task)) not in COMMAND_MODULES, f"{file_name}: {task.get('name')} runs a command line"


def test_windows_tasks_use_ansible_windows_or_builtin_modules():
    for file_name, task in all_tasks():
        module = module_of(task)
        assert module.startswith(("ansible.windows.", "ansible.builtin.")), f"{file_name}: {module}"


@pytest.mark.parametrize("script", ["ven_pairing_script.ps1", "ven_activate.ps1"])
def test_powershell_passes_the_code_only_to_scripts_called_in_this_process(script):
    text = without_comments((POWERSHELL / script).read_text())
    assert "Start-Process" not in text
    assert not re.search(r"\bcmd(\.exe)?\b", text, re.IGNORECASE)
    assert not re.search(r"\b(powershell|pwsh)(\.exe)?\b", text, re.IGNORECASE)
    assert not re.search(r"Invoke-Expression|\biex\b", text, re.IGNORECASE)
    code_lines = [
        line.strip()
        for line in text.splitlines()
        if "$ActivationCode" in line and not line.lstrip().startswith(("#", "[", "param"))
    ]
    allowed = (
        r"^if \((-not )?\$ActivationCode",  # checks
        r"^return \$Text\.Replace\(\$ActivationCode, '<activation code>'\)$",  # blanking it out of output
        r"^if \(-not \$Text -or -not \$ActivationCode\)",
        r"^\$arguments = @\('-management-server', \$ManagementServer, '-activation-code', \$ActivationCode\)",
        r"^if \(\$ActivationCode\) \{ \$activate \+= @\('-activation-code', \$ActivationCode\) \}$",
        r'^"activation_code: \$ActivationCode",$',  # the documented activation file
    )
    for line in code_lines:
        assert any(re.search(pattern, line) for pattern in allowed), f"{script}: unexpected use of the code: {line}"
    for word in ("Write-Host", "Write-Output", "Write-Verbose", "Add-Content", "Out-File", "Write-Warning"):
        for line in code_lines:
            assert word not in line, f"{script} may log the code: {line}"


def test_the_scripts_that_receive_the_code_blank_it_out_of_their_output():
    for script in ("ven_pairing_script.ps1", "ven_activate.ps1"):
        text = (POWERSHELL / script).read_text()
        assert "throw (Hide-Code $_.Exception.Message)" in text
        assert re.search(r"\*>&1 \| ForEach-Object \{ Hide-Code \(\[string\]\$_\) \}", text)


def test_the_code_never_goes_in_the_install_record():
    record = task_named("remember.yml", "Write the install record")
    assert "activation" not in yaml.safe_dump(record)


# --- pairing script: URL and options --------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "script"), [("activated", "pair.ps1"), ("prepared", "prepare.ps1")])
def test_the_pairing_script_url_is_the_documented_one(state, script):
    task = task_named("install_pairing_script.yml", "Install and pair with the PCE's pairing script")
    parameters = task["ansible.windows.win_powershell"]["parameters"]
    variables = {"ven_state": state}
    variables["__ven_win_script"] = render(task["vars"]["__ven_win_script"], **variables)
    variables.update(ven_management_server="pce.example.com:8443", ven_pairing_script_api_version="v18")
    variables["__ven_profile_id"] = "1"
    url = render(parameters["Url"], **variables)
    assert url == f"https://pce.example.com:8443/api/v18/software/ven/image?pair_script={script}&profile_id=1"
    assert render(parameters["ScriptName"], **variables) == script
    assert parameters["ManagementServer"] == "{{ ven_management_server }}"
    assert "__ven_win_activate_arguments" in parameters["ActivateArguments"]


def test_the_pairing_script_is_downloaded_with_tls12_and_run_with_single_dash_options():
    text = (POWERSHELL / "ven_pairing_script.ps1").read_text()
    tls12 = "[Enum]::ToObject([System.Net.SecurityProtocolType], 3072)"
    assert f"[System.Net.ServicePointManager]::SecurityProtocol = {tls12}" in text
    assert "New-Object System.Net.WebClient" in text
    assert "$client.DownloadFile($Url, $scriptPath)" in text
    assert re.search(r"\$scriptPath = Join-Path \$env:windir \"temp\\\$ScriptName\"", text)
    assert (
        "$arguments = @('-management-server', $ManagementServer, '-activation-code', $ActivationCode)"
        " + $ActivateArguments" in text
    )
    assert "& $scriptPath @arguments *>&1" in text
    assert not re.search(r"'--[a-z]", without_comments(text)), "double-dash (Linux) options in a Windows script"


def test_activate_is_the_documented_ven_ctl_command():
    text = (POWERSHELL / "ven_activate.ps1").read_text()
    assert "$ctl = Join-Path $InstallDir 'illumio-ven-ctl.ps1'" in text
    assert "$activate = @('activate', '-management-server', $ManagementServer)" in text
    assert "& $ctl @Words *>&1" in text
    assert "$activationFile = Join-Path $DataDir 'etc\\agent_activation.cfg'" in text
    assert '"masterconfig_server: $ManagementServer"' in text


def test_windows_activate_options_come_from_the_filter_with_the_windows_platform():
    task = task_named(
        "main.yml", "Check the activate options with the Windows rules (single dash, no colons, no proxy option)"
    )
    expression = task["ansible.builtin.set_fact"]["__ven_win_activate_arguments"]
    assert "microseg.illumio.ven_activate_arguments(platform='windows')" in expression
    assert "proxy_server" not in expression


# --- the filter's Windows syntax --------------------------------------------------------------------------------
WINDOWS_OPTIONS = {
    "name": "web01",
    "labels": {"role": "Web", "app": "HRM", "env": "Dev", "loc": "NYC"},
    "enforcement_mode": "visibility_only",
    "visibility_level": "flow_summary",
    "log_traffic": False,
}


def test_the_filter_gives_single_dash_windows_arguments():
    arguments = ven_activate_arguments(WINDOWS_OPTIONS, platform="windows")
    names = arguments[0::2]
    assert names[:6] == ["-name", "-role", "-app", "-env", "-loc", "-enforcement_mode"]
    assert all(name.startswith("-") and not name.startswith("--") for name in names)
    assert arguments[1::2] == ["web01", "Web", "HRM", "Dev", "NYC", "visibility_only", "flow_summary", "false"]
    assert not any(":" in value for value in arguments)
    assert ven_activate_arguments(WINDOWS_OPTIONS)[0] == "--name"


def test_the_filter_options_are_the_ones_the_windows_pairing_script_takes():
    lab_script = (REPO / "tools" / "pcelab" / "src" / "pcelab" / "scripts" / "pair.ps1").read_text()
    accepted = set(re.search(r"\$activateOptions = @\(([^)]*)\)", lab_script).group(1).replace("'", "").split(", "))
    names = {name.lstrip("-") for name in ven_activate_arguments(WINDOWS_OPTIONS, platform="windows")[0::2]}
    assert names <= accepted, names - accepted


@pytest.mark.parametrize(
    "options",
    [
        {"labels": {"role": "R: UNKNOWN"}},
        {"labels": {"app": "A:UNKNOWN"}},
        {"name": "host:1"},
        {"proxy_server": "http://proxy.example.com:3128"},
    ],
)
def test_the_filter_refuses_what_windows_activation_rejects(options):
    with pytest.raises(AnsibleFilterError):
        ven_activate_arguments(options, platform="windows")


# --- PowerShell files -----------------------------------------------------------------------------------------
POWERSHELL_FILES = sorted(POWERSHELL.glob("*.ps1"))


def test_there_are_powershell_files():
    assert {path.name for path in POWERSHELL_FILES} >= {
        "ven_status.ps1",
        "ven_pairing_script.ps1",
        "ven_activate.ps1",
        "ven_ctl.ps1",
        "ven_install_package.ps1",
    }


@pytest.mark.parametrize("path", POWERSHELL_FILES, ids=lambda path: path.name)
def test_powershell_brackets_balance(path):
    check_balanced(strip_powershell(path.read_text()))


@pytest.mark.parametrize("path", POWERSHELL_FILES, ids=lambda path: path.name)
def test_powershell_uses_every_parameter_it_declares(path):
    code = strip_powershell(path.read_text())
    block, rest = param_block(code)
    declared = re.findall(r"\$(\w+)", block)
    assert declared
    for name in declared:
        assert re.search(r"\$" + name + r"\b", rest, re.IGNORECASE), f"{path.name}: ${name} is never used"


@pytest.mark.parametrize("path", POWERSHELL_FILES, ids=lambda path: path.name)
def test_every_parameter_a_task_passes_is_declared(path):
    declared = {name.lower() for name in re.findall(r"\$(\w+)", param_block(strip_powershell(path.read_text()))[0])}
    used = 0
    for file_name, task in all_tasks():
        arguments = task.get("ansible.windows.win_powershell")
        if not arguments or arguments.get("path") != f"windows/{path.name}":
            continue
        used += 1
        for name in arguments.get("parameters", {}):
            assert name.lower() in declared, f"{file_name}: {task['name']} passes {name}, which {path.name} lacks"
    assert used, f"no task runs {path.name}"


def test_the_checker_finds_unbalanced_powershell():
    with pytest.raises(AssertionError):
        check_balanced(strip_powershell("if ($a) { Write-Host '}' \n"))
    check_balanced(strip_powershell('$b = "{ $($a) `" }" # }\n'))


# --- idempotence: a VEN paired with the wanted PCE -----------------------------------------------------------
def paired_host_variables(**overrides):
    facts = {
        "installed": True,
        "version": "23.2.10-100",
        "activated": True,
        "prepared": False,
        "suspended": False,
        "management_server": "PCE.example.com:8443",
        "activation_file_server": None,
    }
    variables = {
        "ven_state": "activated",
        "ven_install_method": "pairing_script",
        "ven_management_server": "pce.example.com:8443",
        "ven_version": "",
        "ven_upgrade_method": "package",
        "ven_package_src": "",
        "ven_when_paired_elsewhere": "fail",
        "ven_proxy_manage": False,
        "__ven_win": facts,
        "__ven_needs_pairing": False,
        "__ven_upgrade": False,
        # A skipped task still registers its result.
        "__ven_win_activated": {"changed": False, "skipped": True},
    }
    variables.update(overrides)
    return variables


def test_a_ven_paired_with_the_wanted_pce_gets_no_install_and_no_pairing():
    variables = paired_host_variables()
    here = render(
        task_named("activated.yml", "Note whether the VEN is paired with this PCE now")["ansible.builtin.set_fact"][
            "__ven_win_here"
        ],
        **variables,
    )
    assert here is True
    variables["__ven_win_here"] = here
    for file_name in ("install.yml", "activated.yml"):
        for task in yaml.safe_load((TASKS / file_name).read_text()):
            if "when" not in task or module_of(task) == "ansible.builtin.set_fact":
                continue
            assert not condition(task["when"], **variables), f"{file_name}: {task['name']} would run"


@pytest.mark.parametrize(
    ("state", "facts"),
    [
        ("suspended", {"suspended": True}),
        ("deactivated", {"activated": False}),
        ("absent", {"installed": False, "activated": False}),
        ("prepared", {"activated": False, "prepared": True, "activation_file_server": "pce.example.com:8443"}),
    ],
)
def test_a_ven_already_in_its_state_is_left_alone(state, facts):
    variables = paired_host_variables(ven_state=state)
    variables["__ven_win"] = {**variables["__ven_win"], **facts}
    for task in yaml.safe_load((TASKS / f"{state}.yml").read_text()):
        if module_of(task) != "ansible.windows.win_powershell":
            continue
        assert not condition(task["when"], **variables), f"{state}.yml: {task['name']} would run"


def test_a_ven_paired_elsewhere_fails_by_default():
    variables = paired_host_variables()
    variables["__ven_win"] = {**variables["__ven_win"], "management_server": "other.example.com:8443"}
    variables["__ven_win_here"] = False
    assert condition(task_named("activated.yml", "Refuse a VEN paired with another PCE")["when"], **variables)
    assert not condition(
        task_named("activated.yml", "Pair the VEN (illumio-ven-ctl.ps1 activate)")["when"], **variables
    )
    variables["ven_when_paired_elsewhere"] = "repair"
    assert condition(task_named("activated.yml", "Pair the VEN (illumio-ven-ctl.ps1 activate)")["when"], **variables)


# --- ansible-playbook --syntax-check with a Windows host ------------------------------------------------------
def ansible_windows_root() -> Path | None:
    """A collections folder that holds ansible.windows: .build/collections, ANSIBLE_COLLECTIONS_PATH, /tmp/coll."""
    candidates = [REPO / ".build" / "collections"]
    candidates += [Path(entry) for entry in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if entry]
    candidates.append(Path("/tmp/coll"))
    for root in candidates:
        if (root / "ansible_collections" / "ansible" / "windows" / "MANIFEST.json").is_file():
            return root
    return None


def test_ansible_playbook_accepts_the_windows_tasks(tmp_path):
    windows_root = ansible_windows_root()
    if windows_root is None:
        pytest.skip("ansible.windows is not installed (tools/fetch_ansible_windows.py puts it in .build/collections)")
    ours = tmp_path / "collections"
    (ours / "ansible_collections" / "microseg").mkdir(parents=True)
    (ours / "ansible_collections" / "microseg" / "illumio").symlink_to(REPO, target_is_directory=True)
    (tmp_path / "inventory.ini").write_text(
        "[windows]\nwin1 ansible_host=192.0.2.10 ansible_connection=winrm ansible_shell_type=powershell\n"
    )
    imports = [
        {
            "name": f"Windows tasks {path.name}",
            "ansible.builtin.import_role": {"name": "microseg.illumio.ven", "tasks_from": f"windows/{path.name}"},
        }
        for path in task_files()
    ]
    playbook = [
        {
            "name": "The role on a Windows host",
            "hosts": "windows",
            "gather_facts": False,
            "roles": ["microseg.illumio.ven"],
        },
        {"name": "Every Windows task file", "hosts": "windows", "gather_facts": False, "tasks": imports},
    ]
    (tmp_path / "site.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    environment = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(ours), str(windows_root)]),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    playbook_command = Path(sys.executable).with_name("ansible-playbook")
    done = subprocess.run(
        [str(playbook_command), "--syntax-check", "-i", "inventory.ini", "site.yml"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_jinja_expressions_in_the_windows_tasks_compile():
    environment = jinja2.Environment(autoescape=False)  # noqa: S701 - not HTML

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for file_name, task in all_tasks():
        for text in strings(task):
            if "{{" in text or "{%" in text:
                environment.parse(text)
        for key in ("when", "changed_when"):
            for text in strings(task.get(key)):
                environment.parse("{{ " + text + " }}")
        assert file_name
