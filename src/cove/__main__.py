from cove.cli import app

app(prog_name="cove")
