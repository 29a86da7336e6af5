"""Write the report: HTML (one self-contained file), PDF (WeasyPrint, local files only), JSON and
CSV of every number, and the Papers-with-Code model index.

The PDF renderer gets a URL fetcher that allows data: URIs and files inside the report folder
and refuses everything else (no network access, whatever a protocol's text contains). Templates
are autoescaped; protocol text reaches them as plain strings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import unquote, urlparse

import jinja2
import pandas as pd
import yaml

from transfg.run_files import write_atomic

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
FORMATS = ("html", "pdf", "json", "csv", "model-index")


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def html(context: dict) -> str:
    css = (TEMPLATES / "report.css").read_text()
    return environment().get_template("report.html.j2").render(**context, css=css)


def _clean(value):
    """JSON-safe: NaN and infinities become null; private (_) keys and charts are dropped."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()
                if not str(k).startswith("_") and k not in ("chart", "seed_chart")}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _clean(value.item())
    return value


def as_json(context: dict) -> dict:
    results: pd.DataFrame = context["results"]
    return _clean({"schema_version": context["schema_version"],
                   "bootstrap_seed": context["bootstrap_seed"],
                   "title": context["title"], "generated": context["generated"],
                   "verdicts": context["verdicts"], "summary": context["summary"],
                   "sections": context["sections"], "environment": context["environment"],
                   "results": results.to_dict(orient="records")})


def model_index(context: dict) -> dict:
    """Papers-with-Code model-index: one model per arm and framework with its mean final
    accuracy over seeds."""
    models = []
    for section in context["sections"]:
        for arm in section["arms"]:
            if not arm["seeds"]:
                continue
            models.append({
                "Name": f"{section['name']}/{arm['arm']}/{arm['framework']}",
                "Metadata": {"Seeds": arm["seeds"], "Framework": arm["framework"]},
                "Results": [{"Task": "Fine-Grained Image Classification",
                             "Dataset": section["dataset"],
                             "Metrics": {"Top 1 Accuracy": f"{arm['mean']}%",
                                         "Top 1 Accuracy 95% CI": arm["ci"]}}],
                "Paper": {"Title": section["paper"].get("title"),
                          "URL": section["paper_url"]}})
    return {"Models": models}


def fetcher(folder: Path):
    """A WeasyPrint URL fetcher for data: URIs and files inside `folder`; `blocked` lists every
    URL it refused."""
    from weasyprint.urls import URLFetcher

    root = folder.resolve()

    class Fetcher(URLFetcher):
        def fetch(self, url, headers=None):
            scheme = urlparse(url).scheme.lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = Path(unquote(urlparse(url).path)).resolve()
                if path == root or root in path.parents:
                    return super().fetch(url, headers)
            self.blocked.append(url)
            raise ValueError(f"the report renderer fetches only local files inside {root} "
                             f"and data: URIs; refused {url}")

    fetch = Fetcher(timeout=1, allow_redirects=False)
    fetch.blocked = []
    return fetch


def pdf(html_text: str, folder: Path, target: Path, attachments: list[Path]):
    import weasyprint

    fetch = fetcher(folder)
    document = weasyprint.HTML(string=html_text, base_url=str(folder.resolve()) + "/",
                               url_fetcher=fetch)
    files = [weasyprint.Attachment(filename=str(p), url_fetcher=fetch,
                                   description=p.name) for p in attachments]
    write_atomic(target, lambda f: document.write_pdf(f, attachments=files), mode="wb")
    return fetch


def write(context: dict, folder: Path, name: str, formats=("html", "pdf", "json")) -> list[Path]:
    """Write the chosen formats into `folder`; returns the paths written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"--format {', '.join(unknown)}; allowed: {', '.join(FORMATS)}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    data = as_json(context)
    json_path = folder / f"{name}.json"
    if "json" in formats or "pdf" in formats:
        write_atomic(json_path, lambda f: f.write(json.dumps(data, indent=2) + "\n"))
        written.append(json_path)
    page = html(context)
    if "html" in formats:
        write_atomic(folder / f"{name}.html", lambda f: f.write(page))
        written.append(folder / f"{name}.html")
    if "csv" in formats:
        results = context["results"]
        write_atomic(folder / f"{name}-runs.csv", lambda f: results.to_csv(f, index=False))
        claims = pd.DataFrame([{"claim": v["claim"], "kind": v["kind"], "verdict": v["verdict"],
                                "sentence": v["sentence"], "p_value": v["p_value"],
                                "p_holm": v["numbers"].get("p_holm"),
                                "p_not_reproduced": v["p_not_reproduced"],
                                "p_not_reproduced_holm": v["numbers"].get(
                                    "p_not_reproduced_holm"),
                                "more_seeds": v["more_seeds"],
                                "warnings": "; ".join(v["warnings"])}
                               for v in context["verdicts"]])
        write_atomic(folder / f"{name}-claims.csv", lambda f: claims.to_csv(f, index=False))
        written += [folder / f"{name}-runs.csv", folder / f"{name}-claims.csv"]
    if "model-index" in formats:
        index = yaml.safe_dump(model_index(context), sort_keys=False, allow_unicode=True)
        write_atomic(folder / f"{name}-model-index.yml", lambda f: f.write(index))
        written.append(folder / f"{name}-model-index.yml")
    if "pdf" in formats:
        pdf(page, folder, folder / f"{name}.pdf", [json_path])
        written.append(folder / f"{name}.pdf")
    return written
