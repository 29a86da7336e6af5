"""The report: `model.py` computes every number and sentence, `charts.py` draws them (inline SVG,
matplotlib), `render.py` fills the Jinja2 templates in `templates/` and writes HTML, PDF, JSON, CSV
and the Papers-with-Code model index."""
