"""A pytest-lsp client that records raw progress values, partial results and message order."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any

import attrs
from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcServerError
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from .conftest import WORKSPACE, probe_env


class RecordingClient(LanguageClient):
    """Keeps every `$/progress` value as plain JSON, per token, in arrival order."""

    refuse_create = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.stamps: dict[Any, list[float]] = defaultdict(list)  # arrival times of `values`
        self.created: list[Any] = []
        self.events: list[tuple[str, Any]] = []
        self.init_result: Any = None

    def report_server_error(self, error: Exception, source: Any) -> None:
        if source is FeatureRequestError:  # our own refusal of a create request
            return
        super().report_server_error(error, source)


def _plain(value: Any) -> Any:
    return default_converter().unstructure(value) if attrs.has(type(value)) else value


def _on_progress(client: RecordingClient, params: types.ProgressParams) -> None:
    value = _plain(params.value)
    client.values[params.token].append(value)
    client.stamps[params.token].append(time.monotonic())
    client.events.append(("progress", params.token))


def _on_create(client: RecordingClient, params: types.WorkDoneProgressCreateParams) -> None:
    if client.refuse_create:
        raise JsonRpcServerError("this client refuses progress", -32000)
    client.created.append(params.token)


def make_client() -> RecordingClient:
    client = RecordingClient(converter_factory=default_converter)
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.PROGRESS] = _on_progress
    features[types.WINDOW_WORK_DONE_PROGRESS_CREATE] = _on_create
    register_lsp_features(client, features)
    return client


CONFIG = ClientServerConfig(server_command=[sys.executable, "-m", "finecode_wm", "lsp"],
                            server_env=probe_env(), client_factory=make_client)


def init_params(*, progress: bool = True, warm: bool = True, root: Any = WORKSPACE,
                **options: Any) -> types.InitializeParams:
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=progress)),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options={"warmRunners": warm, **options})
