"""(skeleton: the console helper owns `cove console serve` and `cove console operator add|remove|list`)"""

import typer

console_app = typer.Typer(help="The operator's console: a dashboard page with its own login.", no_args_is_help=True)
