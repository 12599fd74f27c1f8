"""Video: the browser-safe rendition of every uploaded video, and the queue that makes it.

- ``probe``: what a video is (codecs, size, rotation, rate), its bounds checked from the
  container before any frame is decoded, and whether it already plays in every browser.
- ``rendition``: the rendition itself: H.264 (High, yuv420p, 8-bit) and AAC in MP4 with
  faststart and no metadata, stream-copied when the upload already is that, transcoded
  otherwise (rotation applied to the pixels, longest side, frame rate and bitrate capped);
  the poster frame, upright.
- ``child``: one transcode in a child process under a CPU limit, so a decoder crash or a
  runaway file costs that child, never the server.
- ``queue``: ``Transcoder``, the durable job queue's worker (bounded per host, never on the
  event loop), and the backfill of videos stored before the rendition existed.

CPU-bound code here blocks: callers run it on a thread pool or in a child process.
"""
