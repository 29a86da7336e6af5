"""The report in two steps: `model.py` computes the typed report model (numbers only: `Report`,
`build`), `render.py` writes it out: HTML from the Jinja2 templates in `templates/`, PDF, JSON (the
model as it is), CSV and the Papers-with-Code model index, with the formatting in `text.py` (Jinja
filters) and the charts drawn by `charts.py` (inline SVG, matplotlib)."""
