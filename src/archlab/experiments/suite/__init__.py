"""The built-in claims suite: choosing claims (claims), the calibrations a family's verdicts rest on
(calibration), and the small live comparison `archlab demo` ends with (demo)."""
