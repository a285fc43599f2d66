#!/usr/bin/python3
"""A DICOM study for test/ike: made with pydicom, sent with dcmtk's storescu, compared here.

  dicom.py make DIR N           N CT images (512x512, 16-bit, pixels from a seeded generator) of
                                one study and series, Explicit VR Little Endian, in DIR
  dicom.py compare SENT RECEIVED
                                every sent image must be in RECEIVED (storescp's files, found by
                                SOP Instance UID) with the very same dataset bytes (everything
                                after the file meta header, which storescp writes itself);
                                prints {"sent", "received", "identical", "bytes", "missing",
                                "different"} and exits 1 unless all are identical
"""
import json
import os
import random
import sys

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS = COLUMNS = 512


def write_image(path, sop_class, modality, rows, columns, pixels, study, series, number, frames=1,
                samples=1, bits=16, description="medix IKE test study"):
    """One image (or one multi-frame object) of a study, Explicit VR Little Endian, uncompressed:
    `pixels` are its bytes (frames x rows x columns x samples x bits/8)."""
    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "Test^Hospital A", "MX-0001"
    ds.Modality, ds.StudyDescription = modality, description
    ds.SeriesNumber, ds.InstanceNumber = 1, number
    ds.Rows, ds.Columns = rows, columns
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored, ds.HighBit = (12, 11) if bits == 16 else (8, 7)
    ds.PixelRepresentation = 0
    ds.PixelData = pixels
    ds.save_as(path, write_like_original=False)


def make(out, n):
    os.makedirs(out, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    rng = random.Random(20261125)
    for i in range(n):
        write_image(os.path.join(out, "img%03d.dcm" % (i + 1)), CTImageStorage, "CT", ROWS, COLUMNS,
                    rng.randbytes(ROWS * COLUMNS * 2), study, series, i + 1)


def dataset_bytes(path):
    """The bytes after the file meta header (group 0002, its length in (0002,0000))."""
    data = open(path, "rb").read()
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        raise ValueError("%s: not a DICOM file with a file meta group length" % path)
    length = int.from_bytes(data[140:144], "little")
    return data[144 + length:]


def compare(sent_dir, received_dir):
    received = {}
    for name in os.listdir(received_dir):
        path = os.path.join(received_dir, name)
        try:
            received[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID] = path
        except Exception:  # noqa: BLE001 (anything else storescp left there)
            pass
    out = {"sent": 0, "received": len(received), "identical": 0, "bytes": 0, "missing": [], "different": []}
    for name in sorted(os.listdir(sent_dir)):
        path = os.path.join(sent_dir, name)
        out["sent"] += 1
        uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        if uid not in received:
            out["missing"].append(name)
            continue
        mine = dataset_bytes(path)
        if mine == dataset_bytes(received[uid]):
            out["identical"] += 1
            out["bytes"] += len(mine)
        else:
            out["different"].append(name)
    print(json.dumps(out))
    return 0 if out["identical"] == out["sent"] and out["sent"] > 0 else 1


def main(argv):
    if len(argv) == 4 and argv[1] == "make":
        make(argv[2], int(argv[3]))
        return 0
    if len(argv) == 4 and argv[1] == "compare":
        return compare(argv[2], argv[3])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
