"""The claims web app's API and upload handling, against a real server on a local port (tiny random joint model)."""
import base64
import json
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import urllib3

from src.damage_cost import app as app_cli
from src.damage_cost.report import csv_columns
from src.damage_cost.web import service as web_service
from tests.damage_cost.conftest import ClaimsServer

HTTP = urllib3.PoolManager(maxsize=8)


def post_photos(url: str, files: list, query: str = "") -> urllib3.BaseHTTPResponse:
    """POST (name, bytes) pairs as the multipart field 'images'."""
    fields = [("images", (name, data, "application/octet-stream")) for name, data in files]
    return HTTP.request("POST", f"{url}/api/estimate{query}", fields=fields, timeout=120)


def photo_files(server: ClaimsServer, count: int) -> list:
    return [(path.name, path.read_bytes()) for path in server.photos[:count]]


def test_display_name_keeps_no_folder_and_no_control_characters():
    assert web_service.display_name("C:\\claims\\car 1.jpg", 0) == "car 1.jpg"
    assert web_service.display_name("../../etc/passwd", 0) == "passwd"
    assert web_service.display_name("a\x00b\nc.png", 0) == "abc.png"
    assert web_service.display_name("", 2) == "photo_3"
    assert web_service.display_name("dir/", 0) == "photo_1"
    assert len(web_service.display_name("x" * 500 + ".jpg", 0)) == web_service.MAX_NAME_LENGTH


def test_decode_image_matches_opencv_and_refuses_what_it_cannot_use(tmp_path: Path):
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), image)
    decoded, reason = web_service.decode_image(path.read_bytes(), max_pixels=1200)
    assert reason == "" and np.array_equal(decoded, cv2.imread(str(path)))
    assert web_service.decode_image(path.read_bytes(), max_pixels=1199) == \
        (None, "too large: 40x30 pixels (at most 1,199 per image)")
    assert web_service.decode_image(b"", 100) == (None, web_service.EMPTY_FILE)
    assert web_service.decode_image(b"GIF89a not really", 100) == (None, web_service.NOT_DECODABLE)


def test_health_describes_models_and_limits(claims_server: ClaimsServer):
    response = HTTP.request("GET", f"{claims_server.url}/health")
    body = json.loads(response.data)
    assert response.status == 200 and body["status"] == "ok"
    assert body["models"]["joint"] is True and body["models"]["price_model"]["kind"] == "group_mean"
    assert body["limits"] == {"max_files": 4, "max_request_mb": 1.0, "max_pixels": 40_000_000}


def test_page_and_its_assets_are_served_locally(claims_server: ClaimsServer):
    page = HTTP.request("GET", f"{claims_server.url}/").data.decode()
    assert "/static/app.js" in page and "/static/app.css" in page and "http" not in page
    for asset in ("app.js", "app.css"):
        response = HTTP.request("GET", f"{claims_server.url}/static/{asset}")
        assert response.status == 200 and len(response.data) > 500
        assert "https://" not in response.data.decode() and "http://" not in response.data.decode()


def test_estimate_returns_the_report_of_each_photo(claims_server: ClaimsServer):
    files = photo_files(claims_server, 2)
    response = post_photos(claims_server.url, files)
    assert response.status == 200
    report = json.loads(response.data)
    assert [record["image"] for record in report["images"]] == [name for name, _ in files]
    assert report["input"] == web_service.UPLOAD_INPUT and report["images_skipped"] == []
    assert "pictures" not in report and "csv" not in report
    for record, (name, data) in zip(report["images"], files):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        alone = claims_server.service.estimator.estimate(image, name)
        assert record["total"] == alone["total"] == sum(damage["price"] for damage in record["damages"])
        assert record["damages"] == alone["damages"]
    assert report["summary"]["grand_total"] == sum(record["total"] for record in report["images"])
    assert report["summary"]["damages"] > 0, "score-thr 0 on random weights keeps damages"


def test_pictures_and_csv_on_request(claims_server: ClaimsServer):
    report = json.loads(post_photos(claims_server.url, photo_files(claims_server, 1), "?pictures=1").data)
    header, payload = report["pictures"][0].split(",", 1)
    assert header == "data:image/png;base64"
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (512, 512, 3)  # 128x128 photos are drawn at 4x
    rows = pd.read_csv(StringIO(report["csv"]), keep_default_na=False)
    assert list(rows.columns) == csv_columns() and rows["price"].sum() == report["summary"]["grand_total"]


def test_non_images_are_named_and_the_rest_is_still_estimated(claims_server: ClaimsServer):
    files = [("notes.txt", b"claim notes"), *photo_files(claims_server, 1), ("empty.jpg", b"")]
    response = post_photos(claims_server.url, files)
    report = json.loads(response.data)
    assert response.status == 200 and [record["image"] for record in report["images"]] == [files[1][0]]
    assert report["images_skipped"] == [{"path": "notes.txt", "reason": web_service.NOT_DECODABLE},
                                        {"path": "empty.jpg", "reason": web_service.EMPTY_FILE}]
    only_bad = post_photos(claims_server.url, [("notes.txt", b"claim notes")])
    body = json.loads(only_bad.data)
    assert only_bad.status == 400 and body["error"] == "none of the 1 file(s) is a decodable image"
    assert body["images_skipped"] == [{"path": "notes.txt", "reason": web_service.NOT_DECODABLE}]


def test_empty_too_many_and_too_large_requests_are_refused(claims_server: ClaimsServer):
    empty = HTTP.request("POST", f"{claims_server.url}/api/estimate", fields={"note": "no file"})
    assert empty.status == 400 and "no photo in the request" in json.loads(empty.data)["error"]
    files = photo_files(claims_server, 4)
    too_many = post_photos(claims_server.url, files + files[:1])
    assert too_many.status == 400
    assert json.loads(too_many.data)["error"] == "too many photos: 5 sent, at most 4 per request"
    too_large = post_photos(claims_server.url, [("huge.jpg", bytes(1_200_000))])
    assert too_large.status == 413
    assert json.loads(too_large.data)["error"] == "request too large: at most 1 MB of photos per request"
    assert HTTP.request("GET", f"{claims_server.url}/api/estimate").status == 405


def test_concurrent_requests_get_what_sequential_ones_get(claims_server: ClaimsServer):
    requests = [photo_files(claims_server, 4)[index % 4:index % 4 + 1] for index in range(8)]
    sequential = [json.loads(post_photos(claims_server.url, files).data) for files in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda files: post_photos(claims_server.url, files), requests))
    assert [response.status for response in responses] == [200] * 8
    concurrent = [json.loads(response.data) for response in responses]
    assert [report["images"] for report in concurrent] == [report["images"] for report in sequential]


def test_command_line_refuses_bad_options_and_missing_models(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app_cli.main(["--parts-config", "a.yaml", "--parts-ckpt", "a.ckpt", "--price-model", "p.json",
                      "--port", "0"])
    assert exit_info.value.code == 2 and "--port: expected a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        app_cli.main(["--parts-config", "a.yaml", "--parts-ckpt", "a.ckpt", "--damage-config", "d.yaml",
                      "--price-model", "p.json"])
    assert "--damage-config and --damage-ckpt go together" in capsys.readouterr().err
    missing = str(tmp_path / "price.json")
    assert app_cli.main(["--parts-config", "a.yaml", "--parts-ckpt", "a.ckpt", "--price-model", missing]) == 2
    assert missing in capsys.readouterr().err
