"""Mask Scoring R-CNN in MindSpore, and the car-damage repair-cost estimator built on it.

Importing this package sets MindSpore's own log (its C++ core and its Python side) to errors only, unless ``GLOG_v``
is already set: MindSpore reads it once, when it is first imported, and at its default (warnings) it prints notes
on graph compilation and dataset worker queues that say nothing to a user. The project's own warnings go through the
``ms_rcnn`` logger and are not affected. ``GLOG_v=2`` shows MindSpore's warnings again, ``GLOG_v=1`` its info.
Entry points import this package before MindSpore.
"""
import os

os.environ.setdefault("GLOG_v", "3")
