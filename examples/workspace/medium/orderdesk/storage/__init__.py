"""Storage components."""

from __future__ import annotations

from .payment_ratelimit import PAYMENT_LIMIT
from .comment_repository import CommentRepository
from .order_pages import iter_order_pages
from .upload_events import UploadEvent
from .article_model import Article

__all__ = [
    "PAYMENT_LIMIT",
    "CommentRepository",
    "iter_order_pages",
    "UploadEvent",
    "Article",
]
