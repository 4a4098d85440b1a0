"""The built-in claims suite: choosing claims and printing their verdicts (claims) and the calibrations a family's
verdicts rest on (calibration)."""
