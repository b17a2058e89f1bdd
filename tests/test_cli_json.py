"""Every command that prints data has ``--json`` (issue 15): walks the Typer app, so a new
data command without it fails here until it gets one or is listed as an action below."""

from __future__ import annotations

import typer.main

from passerelle.cli import app

# commands that do something rather than print data, with what they print instead
ACTIONS = {
    "init": "writes a starter project",
    "schema": "prints a JSON Schema: JSON already",
    "demo": "builds a demo (its run summary is `passerelle status --json`)",
    "serve": "runs the server",
    "export": "sends an audience (the log is `deliveries list --json`)",
    "screenshots": "writes image files",
    "login": "stores credentials",
    "identity merge": "pins two records together",
    "identity split": "pins two records apart",
    "identity unpin": "withdraws a pin",
    "identity train": "trains and saves the model",
    "identity suggest": "prints or writes a commented identity.yml for IT to review",
    "deliveries retry": "re-sends dead letters (the log is `deliveries list --json`)",
    "privacy access": "writes the person's data to a JSON file",
    "privacy erase": "erases a person (the record is `privacy requests --json`)",
    "users add": "creates a user", "users disable": "disables a user",
    "users enable": "enables a user", "users role": "changes a role",
    "users reset-password": "sets a password",
    "tokens create": "prints a new secret once", "tokens revoke": "revokes a token",
    "db upgrade": "migrates the application database",
    "offers validate": "reports problems like `validate`",
}


def commands(group=None, prefix: str = "") -> dict[str, object]:
    group = group or typer.main.get_command(app)
    found = {}
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if getattr(command, "commands", None):
            found.update(commands(command, path))
        else:
            found[path] = command
    return found


def test_every_data_command_has_json():
    everything = commands()
    assert len(everything) > 40  # the walk found the nested groups too
    without = sorted(path for path, command in everything.items()
                     if path not in ACTIONS
                     and "--json" not in [o for p in command.params for o in p.opts])
    assert without == [], f"data commands without --json: {without}"
    assert set(ACTIONS) <= set(everything), sorted(set(ACTIONS) - set(everything))


def test_actions_are_not_listed_by_mistake():
    """An action that gained --json leaves the list (it is then checked like the others)."""
    everything = commands()
    with_json = sorted(path for path in ACTIONS if "--json" in
                       [o for p in everything[path].params for o in p.opts])
    assert with_json == []
