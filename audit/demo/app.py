"""The demo's web app. Upload or drop an image; the page shows the top-5 prediction, the image
with the selected patches boxed in red and the CLS attention heatmap. With a dataset root, a
gallery of sample test images. Every bad input gets an HTTP 4xx with a JSON message and nothing
is written to disk (images are decoded in memory); the server keeps serving.

Binds to 127.0.0.1 unless told otherwise: the model is the user's, the images are theirs.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

from flask import Flask, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from audit.explain import (
    MAX_BYTES,
    Bundle,
    ExplainError,
    draw_boxes,
    draw_heatmap,
    explain,
    open_image,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
GALLERY = 12


def _png_data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def register_errors(app: Flask, max_bytes: int) -> None:
    """Every error as JSON with a message: 400 for bad input, 413 above the upload limit, the
    HTTP error's own code, 500 (logged with its traceback) for anything else."""

    @app.errorhandler(ExplainError)
    def bad_input(error):
        return jsonify({"error": str(error)}), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        return jsonify({"error": f"the upload is above the {max_bytes}-byte limit"}), 413

    @app.errorhandler(HTTPException)
    def http_error(error):
        return jsonify({"error": error.description}), error.code

    @app.errorhandler(Exception)
    def unexpected(error):  # logged with its traceback by Flask; the page gets a message
        app.logger.exception("explaining failed")
        return jsonify({"error": f"internal error: {type(error).__name__}: {error}"}), 500


def create_app(bundle: Bundle, samples: list | None = None, max_bytes: int = MAX_BYTES
               ) -> Flask:
    """samples: (path, label) of gallery images (the dataset's test split), or None."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config["MAX_CONTENT_LENGTH"] = max_bytes + 64 * 1024  # the form's own bytes
    lock = threading.Lock()  # one forward pass at a time: the model is shared
    gallery = (samples or [])[:GALLERY]

    def respond(image, label=None):
        with lock:
            result = explain(bundle, image)
        body = result.to_dict() | {
            "boxed": _png_data_uri(draw_boxes(image, result)),
            "heatmap": _png_data_uri(draw_heatmap(image, result)),
            "predicted": result.top5[0]["name"]}
        if label is not None:
            body["label"] = bundle.class_names[label] if bundle.class_names else str(label)
        return jsonify(body)

    register_errors(app, max_bytes)

    @app.get("/")
    def index():
        return render_template(
            "demo.html.j2", checkpoint="/".join(Path(bundle.checkpoint).parts[-3:]),
            dataset=bundle.dataset,
            variant=bundle.config.variant, gallery=[
                {"index": i, "name": Path(p.path).name} for i, p in enumerate(gallery)],
            max_mb=f"{max_bytes / 2**20:.0f}")

    @app.post("/api/explain")
    def explain_upload():
        upload = request.files.get("image")
        if upload is None:
            raise ExplainError("no file in the form field 'image'")
        return respond(open_image(upload.read(), max_bytes=max_bytes))

    @app.get("/api/sample/<int:index>")
    def explain_sample(index: int):
        if not 0 <= index < len(gallery):
            abort(404, description=f"no sample {index}; the gallery has {len(gallery)}")
        sample = gallery[index]
        return respond(open_image(sample.path), sample.label)

    @app.get("/sample/<int:index>.png")
    def sample_image(index: int):
        if not 0 <= index < len(gallery):
            abort(404, description=f"no sample {index}")
        image = open_image(gallery[index].path)
        image.thumbnail((160, 160))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue(), 200, {"Content-Type": "image/png"}

    return app


def serve(bundle: Bundle, samples, host: str, port: int) -> None:
    from werkzeug.serving import make_server

    app = create_app(bundle, samples)
    server = make_server(host, port, app, threaded=True)
    where = "only this machine can connect" if host in ("127.0.0.1", "localhost", "::1") \
        else "reachable from the network: anyone who can reach it can use the model"
    print(f"demo: http://{host}:{server.server_port}/  ({where}; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
