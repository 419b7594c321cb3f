"""The Flask application: the claims page, its static files and the JSON API.

- ``GET /``: the page (``static/index.html``); every asset it uses is served from ``/static``, nothing from a CDN.
- ``GET /health``: ``{"status": "ok", "models": ..., "limits": ...}``.
- ``POST /api/estimate``: multipart form, one or more files in the field ``images`` -> the report JSON of
  ``python -m src.damage_cost.estimate`` (``input`` is ``"upload"``, ``path`` of a skipped file is its display
  name). ``?pictures=1`` adds ``pictures`` (annotated PNG per image, as data URLs) and ``csv`` (report.csv's text).
  400: no file, more files than allowed, or no decodable image (``images_skipped`` says why for each);
  413: the request is larger than allowed. Errors are JSON ``{"error": message}``.
"""
from pathlib import Path

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from src.damage_cost.web.service import EstimateService, Upload

STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_FIELD = "images"


def create_app(service: EstimateService) -> Flask:
    """The app serving ``service`` (see the module docstring for the routes)."""
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = service.limits.max_request_bytes
    app.json.sort_keys = False

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge):
        return jsonify(error=f"request too large: at most {service.limits.max_request_mb:g} MB of photos per "
                             "request"), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify(error=f"{error.name}: {error.description}"), error.code

    @app.get("/")
    def index():
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/health")
    def health():
        return jsonify(service.health())

    @app.post("/api/estimate")
    def estimate():
        files = [item for item in request.files.getlist(UPLOAD_FIELD) if item.filename]
        if not files:
            return jsonify(error=f"no photo in the request: send one or more image files in the multipart field "
                                 f"'{UPLOAD_FIELD}'"), 400
        if len(files) > service.limits.max_files:
            return jsonify(error=f"too many photos: {len(files)} sent, at most {service.limits.max_files} per "
                                 "request"), 400
        uploads = [Upload(item.filename, item.read()) for item in files]
        pictures = request.args.get("pictures", "0").lower() in ("1", "true", "yes")
        try:
            report = service.estimate(uploads, pictures=pictures)
        except ValueError as error:
            message, skipped = error.args
            return jsonify(error=message, images_skipped=skipped), 400
        return jsonify(report)

    return app
