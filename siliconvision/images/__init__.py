"""Turn any image source into an encoded OpenAI-style ``image_url`` part.

One entry point, :func:`prepare_image` (and its shortcut :func:`image_part`), takes a
local path (``str`` or ``os.PathLike``), ``bytes``/``bytearray``/``memoryview``, a
binary file object, a ``PIL.Image.Image``, a ``data:`` URI, a :class:`Base64Image`
(base64 data and its MIME type, as framework image blocks hold them) or an http(s)
URL, and:

- sniffs the real format from the bytes (never from a file name);
- validates: empty input, not an image, truncated or corrupt data, decompression
  bombs (checked from the header, before decoding), aspect ratios the server refuses;
- downsizes to what the target model's server keeps for the chosen ``detail``
  (:func:`siliconvision.tokens.client_target_size`), re-encoding only when that makes
  the upload smaller;
- converts what the server does not take (anything but JPEG, PNG, WEBP and still
  GIF), bakes EXIF orientation into the pixels and never carries metadata along.

Bad input raises :class:`~siliconvision.errors.ImageInputError` naming the source
and the reason, before any network call. http(s) URLs pass through untouched unless
``fetch_urls=True`` (then they are fetched through the SSRF guard). Local files are
read under the core file policy (:mod:`siliconvision.guards`): regular files only,
size checked before reading.

Example:
    >>> from PIL import Image as PILImage
    >>> photo = PILImage.new("RGB", (4000, 3000))
    >>> prepared = prepare_image(photo, model="Qwen/Qwen2.5-VL-7B-Instruct", detail="low")
    >>> (prepared.width, prepared.height, prepared.resized)
    (597, 448, True)
    >>> image_part("https://example.com/cat.png")["image_url"]
    {'url': 'https://example.com/cat.png', 'detail': 'high'}

Decisions worth knowing:

- Output format when re-encoding: JPEG, PNG and WEBP stay in their format; GIF
  (when resized), animated images (first frame) and formats the server does not take
  (TIFF, BMP, ICO, PPM, AVIF, HEIC with a plugin, ...) become PNG when the image has
  transparency or is palette/bilevel art, JPEG (quality 90) when it has at least
  1,000,000 pixels, and otherwise whichever of PNG and JPEG is smaller.
- An image whose EXIF orientation is not "normal" is re-encoded upright (servers that
  decode with plain Pillow ignore EXIF and would see it sideways).
- Images are re-encoded only when needed: when only downsizing is involved and the
  result is not smaller than the original bytes, the original bytes are sent.
- Accepted formats in risky modes are converted even when small: CMYK JPEG to RGB
  JPEG, 16/32-bit grey PNG to 8-bit PNG (a plain ``convert("RGB")`` clips it to white).
- ``PIL.Image`` sources are always encoded (there are no original bytes) and never
  cached; paths are cached by (device, inode, size, mtime, ctime), bytes, file
  objects, fetched URLs and data URIs by a BLAKE2b digest of their bytes (data URIs
  and :class:`Base64Image` also by a SHA-256 of their text, so the same text again
  is not decoded).
- :func:`encode_image` keeps an image's own bytes (as base64, for a framework's image
  block) and checks them without decoding: header, then structure (end markers,
  PNG chunk lengths); the pixels are decoded once, by :func:`prepare_image`, when
  the block is sent.
- Re-encoding settings: JPEG quality 90, WEBP quality 90, PNG zlib level 6.
- Downsizing uses BICUBIC, the filter the servers' image processors use (Qwen2-VL's
  ``resample=BICUBIC``): sent at the exact kept size, the model sees what it would
  have seen from the original. A JPEG is decoded at the smallest DCT scale (1/2, 1/4,
  1/8) that still covers that size, and a reduction of more than 2x is first a box
  ``reduce()`` by an integer factor.
- With ``pyvips`` installed (``pip install 'siliconvision[vips]'``), libvips decodes,
  resizes and encodes still 8-bit JPEG, PNG and WEBP images (the common case),
  streamed a strip of rows at a time on a few threads: 2-3x faster at detail=high and
  a fraction of the memory (``benchmarks/RESULTS.md``). It gives the same pixels
  within resampling, and every image libvips finds any fault with is judged by
  Pillow; anything else, and everything without pyvips, is Pillow's.
- Metadata (EXIF, ICC profile, text chunks) is never copied into re-encoded output.
- 16-bit images are scaled to 8 bits, 32-bit integer and float images are stretched
  from their own min..max to 0..255.
- Ghostscript-backed EPS is never opened (untrusted input must not reach a
  PostScript interpreter).

The package, one concern per module (the names are re-exported here):

- ``_sources``: :data:`ImageSource`, :class:`Base64Image` and the one dispatch that
  tells sources apart (URL, pixels, local file, base64 text, bytes, file object);
- ``_decode``: header, decompression bombs, size and aspect limits, EXIF orientation,
  pixel decoding and byte-structure checks;
- ``_resize``: working mode, BICUBIC resize (in strips on two threads), orientation;
- ``_vips``: the libvips backend (decode, resize, orientation, encode) of the common
  cases, when pyvips is installed;
- ``_encode``: the encoding policy (formats, modes, qualities);
- ``_pipeline``: bytes or pixels to a result, planned from the header;
- ``_cache``: the LRU cache; ``_results``: :class:`PreparedImage`, :class:`EncodedImage`;
- ``_prepare``: :func:`prepare_image`, :func:`image_part`, :func:`encode_image`.

Base64 and ``data:`` URIs are read and written by :mod:`siliconvision._datauri`, beside
this package: the token estimate of prepared messages reads them too, and the images
depend on the token rules, not the other way round. The guarded URL fetch and the file
policy are :mod:`siliconvision.guards`'.
"""

from .._datauri import is_data_uri
from ._cache import DEFAULT_CACHE, ImageCache
from ._decode import DEFAULT_MAX_IMAGE_PIXELS
from ._encode import ACCEPTED_FORMATS
from ._pages import prepare_pages, prepare_pdf
from ._pdf import DEFAULT_PDF_OPTIONS, PdfOptions
from ._prepare import encode_image, image_part, prepare_image
from ._results import EncodedImage, PreparedImage, PreparedPdf
from ._sources import PDF_MIME_TYPE, Base64Image, ImageSource, is_image_source, is_image_url, is_pdf

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_CACHE",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_PDF_OPTIONS",
    "PDF_MIME_TYPE",
    "Base64Image",
    "EncodedImage",
    "ImageCache",
    "ImageSource",
    "PdfOptions",
    "PreparedImage",
    "PreparedPdf",
    "encode_image",
    "image_part",
    "is_data_uri",
    "is_image_source",
    "is_image_url",
    "is_pdf",
    "prepare_image",
    "prepare_pages",
    "prepare_pdf",
]
