"""Probe: real packages that read their own files by path, each check named on the command line.

Each check prints lines the end-to-end tests compare (tests/end_to_end/read_by_path.rs).
"""

import os
import sys

EXE = sys.executable


def inside(path):
    return os.fspath(path).startswith(EXE + "/")


def matplotlib_check():
    import io
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager
    from matplotlib.font_manager import FontProperties

    data = matplotlib.get_data_path()
    print("data path", inside(data), os.path.isfile(os.path.join(data, "matplotlibrc")))
    bold = os.path.join(data, "fonts", "ttf", "DejaVuSans-Bold.ttf")
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot([1, 3, 2])
    axes.set_title("read through FreeType", fontproperties=FontProperties(fname=bold))
    axes.set_xlabel("default font")
    png = io.BytesIO()
    figure.savefig(png, format="png")
    print("savefig", png.getvalue()[:4] == b"\x89PNG", len(png.getvalue()) > 5000)
    found = font_manager.findfont("DejaVu Sans", fallback_to_default=False)
    print("findfont", os.path.basename(found), os.path.isfile(found))
    print("styles", "ggplot" in plt.style.available, "classic" in plt.style.available)


def certifi_check():
    import ssl
    import certifi

    path = os.path.join(os.path.dirname(certifi.__file__), "cacert.pem")
    context = ssl.create_default_context(cafile=path)
    print("certifi", inside(path), context.cert_store_stats()["x509_ca"] > 100)


def pytz_check():
    import datetime
    import pytz

    zone = pytz.timezone("Europe/Paris")
    summer = zone.localize(datetime.datetime(2024, 7, 1, 12)).utcoffset()
    print("pytz", zone.zone, summer, len(pytz.all_timezones) > 500, "Asia/Tokyo" in pytz.common_timezones)
    print("zoneinfo file", inside(os.path.join(os.path.dirname(pytz.__file__), "zoneinfo", "UTC")))


def mypyc_check():
    import black
    from blib2to3 import pygram

    print("compiled", pygram.__file__.endswith(".cpython-311-x86_64-linux-gnu.so"), inside(pygram.__file__))
    grammar = os.path.join(os.path.dirname(pygram.__file__), "Grammar.txt")
    print("grammar next to it", os.path.isfile(grammar))
    print("format", repr(black.format_str("x = ( 1,2 )\n", mode=black.Mode())))


def opencv_check():
    import cv2
    import numpy

    cascades = cv2.data.haarcascades
    print("haarcascades", inside(cascades), os.path.isdir(cascades))
    classifier = cv2.CascadeClassifier(os.path.join(cascades, "haarcascade_frontalface_default.xml"))
    print("cascade loaded", not classifier.empty())
    blank = numpy.zeros((64, 64), dtype=numpy.uint8)
    print("faces on a blank image", len(classifier.detectMultiScale(blank)))


def pyproj_check():
    import pyproj

    data = pyproj.datadir.get_data_dir()
    print("proj data", inside(data), os.path.isfile(os.path.join(data, "proj.db")))
    print("crs", pyproj.CRS.from_epsg(2154).name)
    transformer = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    x, y = transformer.transform(2.3522, 48.8566)
    print("transform", round(x), round(y))


def ctypes_check():
    import ctypes
    import errno
    import certifi

    libc = ctypes.CDLL(None, use_errno=True)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fgets.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    path = os.path.join(os.path.dirname(certifi.__file__), "cacert.pem")
    stream = libc.fopen(path.encode(), b"r")
    line = ctypes.create_string_buffer(200)
    libc.fgets(line, 200, stream)
    libc.fclose(stream)
    with open(path, "rb") as file:
        print("ctypes fopen", line.value == file.readline())
    written = libc.fopen(os.path.join(os.path.dirname(path), "new.pem").encode(), b"w")
    print("ctypes fopen w", written, errno.errorcode[ctypes.get_errno()])


def writes_check():
    import errno
    import pytz

    directory = os.path.join(os.path.dirname(pytz.__file__), "zoneinfo")
    target = os.path.join(directory, "UTC")
    for name, call in [
        ("open w", lambda: open(target, "w")),
        ("remove", lambda: os.remove(target)),
        ("mkdir", lambda: os.mkdir(os.path.join(directory, "new"))),
    ]:
        try:
            call()
            print(name, "ok")
        except OSError as error:
            print(name, errno.errorcode[error.errno])


CHECKS = {
    "matplotlib": matplotlib_check,
    "certifi": certifi_check,
    "pytz": pytz_check,
    "mypyc": mypyc_check,
    "opencv": opencv_check,
    "pyproj": pyproj_check,
    "ctypes": ctypes_check,
    "writes": writes_check,
}

for check in sys.argv[1:]:
    CHECKS[check]()
