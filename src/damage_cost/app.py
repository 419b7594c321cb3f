"""The claims web page: upload car photos, get the repair-cost report.

    python -m src.damage_cost.app --parts-config C --parts-ckpt K [--damage-config C2 --damage-ckpt K2]
        --price-model P.json [--host 127.0.0.1] [--port 8000] [--score-thr X] [--threads 4]
        [--max-files 16] [--max-request-mb 64] [--max-pixels 40000000] [--device-target GPU|CPU] [--device-id N]

The models are loaded once at start-up (the model options are those of ``src.damage_cost.estimate``), a first
estimate on a blank image compiles the graphs before the server listens, then the page is served at
``http://HOST:PORT/`` and the JSON API at ``/api/estimate`` and ``/health`` (see :mod:`src.damage_cost.web.routes`).
The server binds to 127.0.0.1 unless ``--host`` says otherwise; exit code 2 when a model cannot be loaded.
"""
import argparse
import sys
from typing import List, Optional

import numpy as np
from waitress import serve

from src.callback import setup_logger
from src.damage_cost.estimate import add_model_arguments, check_model_arguments, load_estimator
from src.damage_cost.web.routes import create_app
from src.damage_cost.web.service import EstimateService, UploadLimits

DEFAULT_LIMITS = UploadLimits()


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m src.damage_cost.app",
                                     description="Web page and JSON API for repair-cost estimates of car photos")
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                            "only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--score-thr", type=float, default=None,
                        help="keep detections with score * mask IoU >= this (default: each config's "
                             "visualize_score_thr)")
    parser.add_argument("--threads", type=int, default=4,
                        help="requests handled at once (photos still run through the models one at a time)")
    parser.add_argument("--max-files", type=int, default=DEFAULT_LIMITS.max_files, help="photos per request")
    parser.add_argument("--max-request-mb", type=float, default=DEFAULT_LIMITS.max_request_mb,
                        help="size of one request in MB (larger ones are answered 413)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_LIMITS.max_pixels, help="pixels per photo")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point: load the models, warm them up, serve until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_arguments(parser, args)
    for name in ("port", "threads", "max_files", "max_pixels"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(args, name)}")
    if args.max_request_mb <= 0:
        parser.error(f"--max-request-mb: expected a positive number, got {args.max_request_mb}")
    logger = setup_logger(None)
    try:
        estimator, models = load_estimator(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"app: error: {error}", file=sys.stderr)
        return 2
    limits = UploadLimits(args.max_files, args.max_request_mb, args.max_pixels)
    logger.info("Models loaded (%s); compiling them on a blank photo", "joint" if estimator.joint else
                "parts and damage")
    estimator.estimate(np.zeros((64, 64, 3), dtype=np.uint8), "warm-up")
    logger.info("Serving the claims page at http://%s:%d/ (Ctrl+C stops it)", args.host, args.port)
    serve(create_app(EstimateService(estimator, models, limits)), host=args.host, port=args.port,
          threads=args.threads, ident="ms_rcnn damage cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
