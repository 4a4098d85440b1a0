"""Controlled experiments: specs (spec/) resolve into runs; run functions (runs/) say what one run executes; the
sweep (sweep/) executes and records them; judge/ decides verdicts; engine.run_specs is the one path from specs to
verdicts; suite/ is the built-in claims suite; report/ renders what a person reads."""
