"""The quarantine review page: a photographer looks at each refused photo and decides.

``app.ReviewApp`` is a WSGI application (mounted at ``/review`` on the daemon's HTTP server,
or served alone by ``bshmd review``); ``thumbnails`` caches the small images it shows;
``reasons`` turns reason codes and measured values into plain words.
"""
