"""Reports for people: one patient's kinetics, predicted risk and drivers as a self-contained HTML page.

Pure rendering: :func:`reports.patient.render_patient_report` takes one patient's canonical tables
and the rows the model scored (made by the caller, e.g. `crs report`) and returns HTML with every
picture inline (base64 PNG). It loads no model, reads no file and imports no pipeline code.
"""
