"""tvlab gui: open the lab's window (the default command)."""
NAME = "gui"
HELP = "open the lab's window (default)"


def add_arguments(p):
    p.add_argument("--model", help="model to load: zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--prompt", help="start with this prompt")


def run(args) -> int:
    from lab.cli import fail
    from lab.ui import qt_libraries

    problem = qt_libraries.check()       # before Qt starts: its own message names the wrong library
    if problem:
        return fail(problem, code=1)
    from lab.ui.app import run as run_gui

    return run_gui(args.model, args.device, args.dtype, args.prompt)
