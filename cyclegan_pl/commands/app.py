"""A web page to try a model: ``python -m cyclegan_pl app --ckpt_path CKPT`` (needs ``cyclegan_pl[app]``).

The page (Gradio) takes an uploaded image, lets you pick a direction among those the model was
trained or imported for, and shows the translation at the image's own size as a PNG to download.
It listens on 127.0.0.1 unless told otherwise, and sends Gradio no usage statistics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from cyclegan_pl.data.image import pil_to_tensor, to_uint8
from cyclegan_pl.errors import OptionError, UserError
from cyclegan_pl.weights import load_checkpoint

APP_EXTRA = "pip install 'cyclegan_pl[app]'"


def _import_gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UserError(f"The app needs the gradio package: {APP_EXTRA}.") from None
    return gradio


def translate_image(module: Any, image: Any, direction: str) -> Any:
    """Translate one PIL image with ``module``; returns a PIL image of the same size."""
    from PIL import Image

    if image is None:
        raise OptionError("Upload an image first.")
    module.translation(direction)
    tensor = pil_to_tensor(image, module.source_channels(direction))[None]
    with torch.no_grad():
        output = module.translate(tensor.to(module.device), direction)[0]
    return Image.fromarray(to_uint8(output))


def build_app(module: Any, title: Optional[str] = None) -> Any:
    """The Gradio page for ``module`` (not started): image in, direction, image out (API ``/translate``)."""
    gr = _import_gradio()
    card = getattr(module, "card_info", {}) or {}
    title = title or f"{card.get('name', 'cyclegan_pl')} ({type(module).__name__})"
    directions = list(module.trained_directions)

    def run(image: Any, direction: str) -> Any:
        try:
            return translate_image(module, image, direction)
        except UserError as error:
            raise gr.Error(str(error)) from None

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"# {title}\n{card.get('description', '')}")
        with gr.Row():
            source = gr.Image(type="pil", label="Input image", image_mode=None)
            result = gr.Image(type="pil", label="Translation (same size, PNG)", format="png")
        direction = gr.Radio(
            directions,
            value=directions[0],
            label="Direction",
            info="Only the directions this model was trained or imported for.",
        )
        button = gr.Button("Translate", variant="primary")
        button.click(run, inputs=[source, direction], outputs=result, api_name="translate")
    return page


def app(
    ckpt_path: Path,
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto",
    eval_mode: Optional[bool] = None,
    block: bool = True,
) -> Any:
    """Start a web page to try a model: upload an image, pick the direction, download the result.

    Args:
        ckpt_path: a checkpoint (``fit``, ``import-reference``, ``download-model``), a
            ``save_pretrained`` folder or ``hf://owner/name``.
        host: the address to listen on (``0.0.0.0`` makes the page reachable from other machines).
        port: the port (default: 7860, or the next free one).
        device: where to run the model: ``auto`` picks a GPU when there is one.
        eval_mode: override the model's ``eval_mode`` (True: dropout off and BatchNorm running
            statistics, deterministic output); None keeps the model's.
        block: wait until interrupted (Ctrl+C); False returns the running page (tests, notebooks).
    """
    _import_gradio()  # before the model loads: a missing extra is said at once
    module = load_checkpoint(ckpt_path)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = module.to(device)
    if eval_mode is not None:
        module.eval_mode = eval_mode
    page = build_app(module)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=True, quiet=True)
    print(f"serving {ckpt_path} at {page.local_url} (Ctrl+C stops it)", flush=True)
    if block:
        try:
            page.block_thread()
        finally:
            page.close()
    return page


__all__ = ["app", "build_app", "translate_image"]
