"""What each `invoke` task does, below the shell: typed options in, lines said, a `Done` back.

tasks.py only names the tasks, connects to the Engine and turns a `Done` or
a `HarnessError` into an exit code; the modules here hold the decisions.
"""
