"""A web page to try a model: ``python -m cyclegan_pl app --ckpt_path CKPT`` (needs ``cyclegan_pl[app]``).

The page (Gradio) takes an uploaded image, lets you pick a direction among those the model was
trained or imported for, and shows the translation at the image's own size as a PNG to download.
It listens on 127.0.0.1 unless told otherwise, and sends Gradio no usage statistics.

An upload reaches the app as a file, unopened: its size is read from its header and an image of
more than ``max_pixels`` pixels is refused before it is decoded (a few hundred bytes of PNG can
describe a 12000 x 12000 image, and decoding and translating it would take gigabytes and
minutes). Requests wait in a queue of ``queue_size`` and ``concurrency`` of them are translated at
once. Every refusal (not an image, too many pixels, a damaged file) is a message on the page
naming the upload.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from cyclegan_pl.data.image import pil_to_tensor, read_image_size, to_uint8
from cyclegan_pl.errors import BadImageError, ImageTooLargeError, OptionError, UserError
from cyclegan_pl.networks.tiling import AUTO_TILING, Tiling
from cyclegan_pl.weights import load_checkpoint

APP_EXTRA = "pip install 'cyclegan_pl[app]'"
#: The default pixel limit of an upload: 1024 x 1024, four times the published models' training
#: crops' side; a translation of that size takes a few seconds on a GPU, about half a minute on a CPU.
DEFAULT_MAX_PIXELS = 1024 * 1024


def _import_gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UserError(f"The app needs the gradio package: {APP_EXTRA}.") from None
    return gradio


def translate_image(module: Any, image: Any, direction: str, tiling: Optional[Tiling] = None) -> Any:
    """Translate one PIL image with ``module`` (in tiles where ``tiling`` applies); returns a PIL
    image of the same size."""
    from PIL import Image

    if image is None:
        raise OptionError("Upload an image first.")
    module.translation(direction)
    tensor = pil_to_tensor(image, module.source_channels(direction))[None]
    # A sampler starts its stream again for every upload: the same image, the same translation.
    module.choose_sampling()
    with torch.no_grad():
        output = module.translate(tensor.to(module.device), direction, tiling=tiling)[0]
    return Image.fromarray(to_uint8(output))


def translate_upload(
    module: Any,
    path: Optional[str],
    direction: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    tiling: Optional[Tiling] = AUTO_TILING,
) -> Any:
    """Translate an uploaded image file, checked from its header before it is decoded.

    Args:
        module: the model.
        path: the uploaded file (None: nothing was uploaded).
        direction: the translation.
        max_pixels: the most pixels (width x height) an upload may have.
        tiling: translate uploads it applies to in tiles (None: always whole).

    Raises:
        OptionError: nothing was uploaded.
        BadImageError: the file is not an image, is damaged, or has more than ``max_pixels``
            pixels (:class:`~cyclegan_pl.errors.ImageTooLargeError`); the message names the upload.
    """
    from PIL import Image

    if path is None:
        raise OptionError("Upload an image first.")
    name = Path(path).name
    module.translation(direction)
    try:
        height, width = read_image_size(path)
    except ImageTooLargeError as error:
        raise ImageTooLargeError(name, error.reason, _SHRINK) from None
    except BadImageError as error:
        raise BadImageError(name, error.reason, _NOT_AN_IMAGE) from None
    if width * height > max_pixels:
        raise ImageTooLargeError(
            name, f"{width}x{height} is {width * height} pixels, over this page's limit of {max_pixels}", _SHRINK
        )
    try:
        with Image.open(path) as image:
            return translate_image(module, image, direction, tiling)
    except (OSError, ValueError, SyntaxError) as error:  # PIL's ways of saying the data is damaged
        if isinstance(error, UserError):
            raise
        raise BadImageError(name, f"{type(error).__name__}: {error}", _NOT_AN_IMAGE) from None


_NOT_AN_IMAGE = "It is not an image this page can read: upload a PNG, JPEG, WebP, BMP or TIFF image."
_SHRINK = (
    "Upload a smaller image, or start the app with a larger max_pixels (--max_pixels) if this machine can "
    "translate it in reasonable time."
)


def _upload_input(gr: Any, **options: Any) -> Any:
    """An image input that hands the app the uploaded file's path without opening it.

    Gradio's own image input opens every upload with PIL before the app's function runs, so a
    file that is no image fails with a message saying nothing, and a data URL is decoded whatever
    its size. This one passes the file on (a data URL is written to a file, not decoded) and
    leaves every check to :func:`translate_upload`. (Its ``preprocess`` is replaced on the
    instance: a subclass of a Gradio component makes Gradio write a ``.pyi`` beside this file.)
    """
    component = gr.Image(type="filepath", **options)

    def preprocess(payload: Any) -> Optional[str]:
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            from gradio import processing_utils

            return processing_utils.save_base64_to_cache(payload.url, component.GRADIO_CACHE, payload.orig_name)
        return None if payload.path is None else str(payload.path)

    component.preprocess = preprocess
    return component


def build_app(
    module: Any,
    title: Optional[str] = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    tiling: Optional[Tiling] = AUTO_TILING,
) -> Any:
    """The Gradio page for ``module`` (not started): image in, direction, image out (API ``/translate``).

    Args:
        module: the model.
        title: the page's title (default: the model's name and method).
        max_pixels: the most pixels an upload may have (see :func:`translate_upload`).
        tiling: translate uploads it applies to in tiles.
    """
    gr = _import_gradio()
    card = getattr(module, "card_info", {}) or {}
    title = title or f"{card.get('name', 'cyclegan_pl')} ({type(module).__name__})"
    directions = list(module.trained_directions)

    def run(path: Optional[str], direction: str) -> Any:
        try:
            return translate_upload(module, path, direction, max_pixels, tiling)
        except UserError as error:
            raise gr.Error(str(error)) from None

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"# {title}\n{card.get('description', '')}")
        with gr.Row():
            source = _upload_input(gr, label=f"Input image (up to {max_pixels} pixels)", image_mode=None)
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
    max_pixels: int = DEFAULT_MAX_PIXELS,
    concurrency: int = 1,
    queue_size: int = 16,
    tiling: Tiling = AUTO_TILING,
    seed: Optional[int] = None,
    steps: Optional[int] = None,
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
        max_pixels: the most pixels (width x height) an uploaded image may have; larger ones are
            refused from their header, before they are decoded. The default, 1024 x 1024, takes
            about half a minute on a CPU; raise it on a GPU.
        concurrency: how many uploads are translated at the same time (each holds its own
            activations in memory).
        queue_size: how many requests may wait; further ones are refused until the queue drains.
        tiling: translate large uploads in tiles (``--tiling.tile 512 --tiling.overlap 64``), with
            the whole image's normalisation statistics, so memory follows the tile, not the
            image (docs/method.md#tiled-translation). As ``translate``: uploads over 4 megapixels
            are tiled (``--tiling.above``), which matters once ``max_pixels`` allows them.
        seed: for a method whose translation samples a path (UNSB): the seed its noise and
            latents start from for every upload (default: the model's ``sampling_seed``). An error
            for the other methods.
        steps: for such a method: how many steps of the path to run (default: all).
        block: wait until interrupted (Ctrl+C); False returns the running page (tests, notebooks).
    """
    for name, value in (("max_pixels", max_pixels), ("concurrency", concurrency), ("queue_size", queue_size)):
        if value < 1:
            raise OptionError(f"{name}={value}: must be 1 or more.", option=name)
    _import_gradio()  # before the model loads: a missing extra is said at once
    module = load_checkpoint(ckpt_path)
    module.choose_sampling(seed, steps)
    for direction in module.trained_directions:
        tiling.check(getattr(module.generator_for(direction), "size_multiple", 1))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = module.to(device)
    if eval_mode is not None:
        module.eval_mode = eval_mode
    page = build_app(module, max_pixels=max_pixels, tiling=tiling)
    page.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    # An upload's bytes are bounded too (8 bytes a pixel: 16-bit RGBA, uncompressed, and headers).
    max_file_size = 8 * max_pixels + (1 << 20)
    page.launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=max_file_size,
    )
    print(f"serving {ckpt_path} at {page.local_url} (Ctrl+C stops it)", flush=True)
    if block:
        try:
            page.block_thread()
        finally:
            page.close()
    return page


__all__ = ["DEFAULT_MAX_PIXELS", "app", "build_app", "translate_image", "translate_upload"]
