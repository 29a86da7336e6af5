"""Write the report from its model (`model.Report`): HTML (one self-contained file), PDF
(WeasyPrint, local files only), JSON (the model as it is) and CSV of every number, and the
Papers-with-Code model index. All formatting happens here and in `text.py` (Jinja filters);
the charts are drawn here, from the model (`charts.py`).

The PDF renderer gets a URL fetcher that allows data: URIs and files inside the report folder
and refuses everything else (no network access, whatever a protocol's text contains). Templates
are autoescaped; protocol text reaches them as plain strings."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jinja2
import pandas as pd
import yaml

from audit.report import charts, text
from audit.report.model import Report
from transfg.run_files import write_atomic

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
FORMATS = ("html", "pdf", "json", "csv", "model-index")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(text.FILTERS)
    return env


def html(report: Report) -> str:
    css = (TEMPLATES / "report.css").read_text()
    claim_charts = {(s.name, c.id): charts.claim_chart(c, s) for s in report.sections
                    for c in s.claims}
    seed_charts = {s.name: charts.seed_chart(s) for s in report.sections}
    fields = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    return environment().get_template("report.html.j2").render(
        **fields, css=css, claim_charts=claim_charts, seed_charts=seed_charts)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, tuples lists, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _clean(value.item())
    return value


def as_json(report: Report) -> dict:
    """The model as it is (dataclasses.asdict; the results table as records), cleaned."""
    data = dataclasses.asdict(dataclasses.replace(report, results=pd.DataFrame()))
    return _clean(data | {"results": report.results.to_dict(orient="records")})


def model_index(report: Report) -> dict:
    """Papers-with-Code model-index: one model per arm and framework with its mean final
    accuracy over seeds."""
    models = []
    for section in report.sections:
        for arm in section.arms:
            if not arm.seeds:
                continue
            models.append({
                "Name": f"{section.name}/{arm.arm}/{arm.framework}",
                "Metadata": {"Seeds": arm.seeds, "Framework": arm.framework},
                "Results": [{"Task": "Fine-Grained Image Classification",
                             "Dataset": section.dataset_title,
                             "Metrics": {"Top 1 Accuracy": f"{text.pct(arm.mean)}%",
                                         "Top 1 Accuracy 95% CI": text.interval(arm.ci)}}],
                "Paper": {"Title": section.paper.get("title"),
                          "URL": text.safe_url(section.paper.get("url"))}})
    return {"Models": models}


def claims_table(report: Report) -> pd.DataFrame:
    """One line per claim: its verdict, the verdict's sentence and its numbers."""
    return pd.DataFrame([{"claim": v["claim"], "kind": v["kind"], "verdict": v["verdict"],
                          "sentence": v["sentence"], "p_value": v["p_value"],
                          "p_holm": v["numbers"].get("p_holm"),
                          "p_not_reproduced": v["p_not_reproduced"],
                          "p_not_reproduced_holm": v["numbers"].get("p_not_reproduced_holm"),
                          "more_seeds": v["more_seeds"], "warnings": "; ".join(v["warnings"])}
                         for v in report.verdicts])


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


def write(report: Report, folder: Path, name: str,
          formats=("html", "pdf", "json")) -> list[Path]:
    """Write the chosen formats into `folder`; returns the paths written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"--format {', '.join(unknown)}; allowed: {', '.join(FORMATS)}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    data = as_json(report)
    json_path = folder / f"{name}.json"
    if "json" in formats or "pdf" in formats:
        write_atomic(json_path, lambda f: f.write(json.dumps(data, indent=2) + "\n"))
        written.append(json_path)
    page = html(report)
    if "html" in formats:
        write_atomic(folder / f"{name}.html", lambda f: f.write(page))
        written.append(folder / f"{name}.html")
    if "csv" in formats:
        claims = claims_table(report)
        write_atomic(folder / f"{name}-runs.csv", lambda f: report.results.to_csv(f, index=False))
        write_atomic(folder / f"{name}-claims.csv", lambda f: claims.to_csv(f, index=False))
        written += [folder / f"{name}-runs.csv", folder / f"{name}-claims.csv"]
    if "model-index" in formats:
        index = yaml.safe_dump(model_index(report), sort_keys=False, allow_unicode=True)
        write_atomic(folder / f"{name}-model-index.yml", lambda f: f.write(index))
        written.append(folder / f"{name}-model-index.yml")
    if "pdf" in formats:
        pdf(page, folder, folder / f"{name}.pdf", [json_path])
        written.append(folder / f"{name}.pdf")
    return written
