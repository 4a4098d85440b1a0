"""CLI sub-commands, discovered by archlab.cli: each module defines add_parser(sub) and run(args)."""
