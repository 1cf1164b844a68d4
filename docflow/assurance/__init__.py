"""The assurance pack, checked against the code: the DCB0129 hazard log traced to
the tests that prove its controls (``hazards``), the clinical safety case report
drawn from it and a test run (``safety_case``), and the accessibility statement fed
by the browser suite's axe results (``accessibility``)."""
