"""Issue #30, "DICOM out": `uptake analyze --dicom-out DIR` writes, beside seg.dcm, the report
as a Comprehensive 3D SR with TID 1500 "Measurement Report" (sr.dcm). The study of
test_dicom_seg.py is analysed; the SR is read back with highdicom (the oracle) and pydicom and
checked against report.json (every measurement, the staging, the burden), seg.dcm (tracking
identifiers, referenced segments, finding sites), the PET (study, patient, the instances of
the image library and the evidence) and, when dicom3tools is installed, `dciodvfy`.
"""

import json

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes

from test_dicom_seg import (  # noqa: F401 (study is a fixture)
    assert_dciodvfy_finds_no_error, pet_slices, study)

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
PRIVATE = "99UPTAKE"


def private(value):
    return hd.sr.CodedConcept(value, PRIVATE, "")


def same(a, b):
    """Two codes are the same concept (value and scheme; meanings are not compared)."""
    return (a.value, a.scheme_designator) == (b.value, b.scheme_designator)


@pytest.fixture(scope="module")
def sr_path(study):  # noqa: F811
    return study["seg"].parent / "sr.dcm"


@pytest.fixture(scope="module")
def report(study):  # noqa: F811
    return json.loads((study["out"] / "report.json").read_text())


@pytest.fixture(scope="module")
def suspicious(report):
    found = [f for f in report["findings"] if f["suspicious"]]
    assert found, "the study should have suspicious findings at --threshold 0"
    return found


def groups(sr):
    return sr.content.get_volumetric_roi_measurement_groups()


def measurement(group, name, derivation=None):
    """The one measurement of `group` named `name` (with that derivation)."""
    found = [m for m in group.get_measurements(name=name)
             if (derivation is None) == (m.derivation is None)
             and (derivation is None or same(m.derivation, derivation))]
    assert len(found) == 1, (name, derivation, found)
    return found[0]


def evaluation(items, name):
    """The values of the CODE items of `items` named `name`."""
    return [i.value for i in items if i.value_type == hd.sr.ValueTypeValues.CODE and same(i.name, name)]


def test_highdicom_reads_a_tid_1500_report(sr_path, suspicious, report):
    sr = hd.sr.srread(sr_path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert isinstance(sr.content, hd.sr.MeasurementReport)
    assert sr.content.get_planar_roi_measurement_groups() == []
    assert len(groups(sr)) == len(suspicious)
    root = sr.content[0]
    assert same(root.name, codes.DCM.ImagingMeasurementReport)
    [observer] = sr.content.get_observer_contexts(observer_type=codes.DCM.Device)
    device = observer.observer_identifying_attributes
    assert device.name == "uptake"
    assert device.model_name == report["model"]["id"]
    procedure = {"psma": ("44139-4", "LN"), "fdg": ("443271005", "SCT")}[report["tracer"]]
    [reported] = [i.value for i in root.ContentSequence
                  if same(i.name, codes.DCM.ProcedureReported)]
    assert (reported.value, reported.scheme_designator) == procedure


def test_every_measurement_is_the_reports(sr_path, suspicious, report):
    sr = hd.sr.srread(sr_path)
    suv = hd.sr.CodedConcept("126401", "DCM", "SUVbw")  # not in pydicom's keywords
    tlu = {"fdg": codes.DCM.TotalLesionGlycolysis, "psma": private("TLPSMA")}[report["tracer"]]
    for group, finding in zip(groups(sr), suspicious, strict=True):
        r = finding["region"]
        expected = [
            (suv, codes.SCT.Maximum, r["suv_max"], "{SUVbw}g/ml"),
            (suv, codes.DCM.PeakValueWithinROI, r["suv_peak"], "{SUVbw}g/ml"),
            (suv, codes.SCT.Mean, r["suv_mean"], "{SUVbw}g/ml"),
            (codes.SCT.Volume, None, r["volume_ml"], "ml"),
            (tlu, None, r["total_uptake"], "{SUVbw}g"),
            (private("PSUSP"), None, finding["p_suspicious"], "{probability}"),
        ]
        if finding["expression_score"] is not None:
            expected.append((private("MIPSMA"), None, finding["expression_score"], "{score}"))
        assert len(group.get_measurements()) == len(expected)
        for name, derivation, value, unit in expected:
            m = measurement(group, name, derivation)
            assert m.value == pytest.approx(value, rel=1e-12, abs=0), (r["id"], name)
            assert (m.unit.value, m.unit.scheme_designator) == (unit, "UCUM")
            algorithm = {i.name.value: i.value for i in m[0].ContentSequence
                         if i.value_type == hd.sr.ValueTypeValues.TEXT}
            assert algorithm["111001"] == "uptake"
            assert algorithm["111003"].endswith(f"model {report['model']['id']}")
        items = list(group[0].ContentSequence)
        assert evaluation(items, private("SUSP")) == [codes.SCT.Yes]
        role = evaluation(items, private("ROLE"))
        assert [c.value for c in role] == [finding["role"]]
        [location] = [i.value for i in items if same(i.name, private("LOC"))]
        assert location == finding["location"]["name"]


def test_groups_measure_the_segs_segments(sr_path, study):  # noqa: F811
    sr = hd.sr.srread(sr_path)
    seg = hd.seg.segread(study["seg"])
    found = groups(sr)
    assert len(found) == seg.number_of_segments
    for number, group in enumerate(found, start=1):
        desc = seg.get_segment_description(number)
        assert group.tracking_uid == desc.tracking_uid
        assert group.tracking_identifier == desc.tracking_id
        assert same(group.finding_type, codes.SCT.Lesion)
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert ref.referenced_sop_class_uid == SEGMENTATION_STORAGE
        assert ref.referenced_segment_numbers == [number]
        assert ref.source_series_for_segmentation.value == (
            pet_slices(study["pet"])[0].SeriesInstanceUID)
        sites = [(s.value.value, s.value.scheme_designator) for s in group.finding_sites]
        regions = [(r.CodeValue, r.CodingSchemeDesignator)
                   for r in desc.get("AnatomicRegionSequence", [])]
        assert sites == regions
    # Filtering by the SEG's tracking UID finds exactly that segment's group.
    desc = seg.get_segment_description(1)
    [match] = sr.content.get_volumetric_roi_measurement_groups(tracking_uid=desc.tracking_uid)
    assert match.referenced_segment.referenced_segment_numbers == [1]


def test_staging_and_burden_are_the_reports(sr_path, report):
    sr = hd.sr.srread(sr_path)
    root = sr.content[0]
    [qualitative] = [i for i in root.ContentSequence
                     if same(i.name, hd.sr.CodedConcept("C0034375", "UMLS", ""))]
    items = list(qualitative.ContentSequence)
    staging = report["staging"]
    assert [c.value for c in evaluation(items, private("MIT"))] == ["mi" + staging["t"]]
    assert [c.value for c in evaluation(items, private("MIN"))] == ["mi" + staging["n"]]
    assert [c.value for c in evaluation(items, private("MIM"))] == ["mi" + staging["m"]]
    assert [c.value for c in evaluation(items, private("MCAT"))] == [
        "mi" + c["category"] for c in staging["m_categories"]]
    pattern = evaluation(items, private("BONEPAT"))
    assert [c.value for c in pattern] == (
        [] if staging["bone_pattern"] is None else ["miM1b-" + staging["bone_pattern"]])
    assert evaluation(items, private("DMI")) == [codes.SCT.Yes if staging["dmi"] else
                                                 codes.SCT.No]
    [line] = [i.value for i in items if same(i.name, private("MITNM"))]
    assert line.startswith(f"miTNM: {staging['t']} {staging['n']} ")
    # The burden: the one measurement group that is not an ROI's (TID 1501).
    ds = pydicom.dcmread(sr_path)
    [imaging] = [i for i in ds.ContentSequence
                 if i.ConceptNameCodeSequence[0].CodeValue == "126010"]
    [burden] = [g for g in imaging.ContentSequence
                if g.ContentTemplateSequence[0].TemplateIdentifier == "1501"]
    nums = {i.ConceptNameCodeSequence[0].CodeValue: float(i.MeasuredValueSequence[0].NumericValue)
            for i in burden.ContentSequence if i.ValueType == "NUM"}
    b, c = report["burden"], report["burden"]["role_counts"]
    expected = {"TTV": b["tumour_volume_ml"], "TLU": b["total_lesion_uptake"],
                "NSUSP": b["suspicious_count"], "NT": c["t"], "NN": c["n"], "NM1A": c["m1a"],
                "NM1B": c["m1b"], "NM1C": c["m1c"], "BONEVOL": b["suspicious_bone_volume_ml"],
                "SKELVOL": b["skeleton_volume_ml"]}
    assert nums.keys() == expected.keys()
    for key, value in expected.items():
        assert nums[key] == pytest.approx(value, rel=1e-12, abs=0), key


def test_the_sr_belongs_to_the_pet_study_and_references_the_seg(sr_path, study):  # noqa: F811
    ds = pydicom.dcmread(sr_path)
    slices = pet_slices(study["pet"])
    pet, seg = slices[0], pydicom.dcmread(study["seg"])
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.StudyInstanceUID == study["study_uid"] == seg.StudyInstanceUID
    assert str(ds.PatientName) == "Müller^Jürgen"
    for key in ("PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "StudyID",
                "AccessionNumber"):
        assert ds[key].value == pet[key].value, key
    assert ds.Modality == "SR"
    assert ds.SeriesInstanceUID.startswith("2.25.") and ds.SOPInstanceUID.startswith("2.25.")
    assert ds.SeriesInstanceUID not in (pet.SeriesInstanceUID, seg.SeriesInstanceUID)
    assert ds.file_meta.MediaStorageSOPClassUID == COMPREHENSIVE_3D_SR
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    [evidence] = ds.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == study["study_uid"]
    referenced = {s.SeriesInstanceUID: {(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
                                        for i in s.ReferencedSOPSequence}
                  for s in evidence.ReferencedSeriesSequence}
    assert referenced == {
        pet.SeriesInstanceUID: {(s.SOPClassUID, s.SOPInstanceUID) for s in slices},
        seg.SeriesInstanceUID: {(SEGMENTATION_STORAGE, seg.SOPInstanceUID)},
    }
    # The image library lists every PET instance.
    [library] = [i for i in ds.ContentSequence
                 if i.ConceptNameCodeSequence[0].CodeValue == "111028"]
    images = [i for i in library.ContentSequence[0].ContentSequence if i.ValueType == "IMAGE"]
    assert {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in images} == {
        s.SOPInstanceUID for s in slices}
    declared = {s.CodingSchemeDesignator for s in ds.CodingSchemeIdentificationSequence}
    assert PRIVATE in declared


def codes_in(items):
    for item in items:
        for key in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            yield from item.get(key, [])
        for measured in item.get("MeasuredValueSequence", []):
            yield from measured.MeasurementUnitsCodeSequence
        yield from codes_in(item.get("ContentSequence", []))


def test_standard_codes_are_ps3_16_concepts(sr_path):
    """Every DCM and SCT code of the SR is a PS3.16 concept with that meaning (pydicom's
    dictionary is the oracle); no other scheme than those, LN, UMLS, RFC5646, UCUM and the
    declared private one is used."""
    from pydicom.sr import _concepts_dict

    meanings = {}
    for scheme in ("DCM", "SCT", "LN"):
        for entries in _concepts_dict.concepts[scheme].values():
            for code, (meaning, _) in entries.items():
                meanings.setdefault((scheme, code), set()).add(meaning.lower())
    ds = pydicom.dcmread(sr_path)
    used = list(codes_in([ds]))
    assert used
    for c in used:
        scheme = c.CodingSchemeDesignator
        assert scheme in {"DCM", "SCT", "LN", "UMLS", "RFC5646", "UCUM", PRIVATE}, scheme
        if scheme in ("DCM", "SCT", "LN"):
            key = (scheme, c.CodeValue)
            assert key in meanings, key
            assert c.CodeMeaning.lower() in meanings[key], (key, c.CodeMeaning, meanings[key])


def test_pydicom_round_trip(sr_path, tmp_path):
    ds = pydicom.dcmread(sr_path)
    copy = tmp_path / "copy.dcm"
    ds.save_as(copy, enforce_file_format=True)
    assert pydicom.dcmread(copy) == ds


def test_dciodvfy_finds_no_error(sr_path):
    assert_dciodvfy_finds_no_error(sr_path)


def test_no_suspicious_finding_writes_no_sr(study, tmp_path, run_uptake):  # noqa: F811
    dout = tmp_path / "dicom"
    proc = run_uptake("analyze", "--pet", study["pet"], "--ct", study["ct"], "--tracer", "psma",
                      "--out", tmp_path / "out", "--dicom-out", dout, "--device", "cpu",
                      "--threshold", "1")
    assert "nor the SR" in proc.stderr, proc.stderr
    assert not (dout / "sr.dcm").exists()


def test_an_fdg_report_names_its_procedure_and_total_lesion_glycolysis(study, tmp_path,  # noqa: F811
                                                                        run_uptake):
    out, dout = tmp_path / "out", tmp_path / "dicom"
    run_uptake("analyze", "--pet", study["pet"], "--ct", study["ct"], "--tracer", "fdg",
               "--out", out, "--dicom-out", dout, "--device", "cpu", "--threshold", "0")
    report = json.loads((out / "report.json").read_text())
    suspicious = [f for f in report["findings"] if f["suspicious"]]
    sr = hd.sr.srread(dout / "sr.dcm")
    [reported] = [i.value for i in sr.content[0].ContentSequence
                  if same(i.name, codes.DCM.ProcedureReported)]
    assert same(reported, hd.sr.CodedConcept("443271005", "SCT", ""))
    for group, finding in zip(groups(sr), suspicious, strict=True):
        m = measurement(group, codes.DCM.TotalLesionGlycolysis)
        assert m.value == pytest.approx(finding["region"]["total_uptake"], rel=1e-12, abs=0)
