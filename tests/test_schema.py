import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.io import read_cohort, write_cohort
from cohorts.schema import canonical_labs, canonical_patients
from tests.conftest import lab_rows


def test_unknown_analyte_error_names_row_and_column():
    labs = lab_rows("P1", "IL6", [(-10, 5), (24, 50)])
    labs.loc[1, "analyte"] = "IL-99"
    with pytest.raises(CohortError) as err:
        canonical_labs(labs, file="labs.csv")
    text = str(err.value)
    assert "IL-99" in text and "row 1" in text and "column 'analyte'" in text and "labs.csv" in text


def test_non_numeric_value_is_an_input_error():
    labs = lab_rows("P1", "CRP", [(-10, 5), (24, 50)]).astype({"value": object})
    labs.loc[0, "value"] = "high"
    with pytest.raises(CohortError, match="column 'value'"):
        canonical_labs(labs)


def test_result_before_draw_is_rejected():
    labs = lab_rows("P1", "IL6", [(24, 50)], resulted=[10.0])
    with pytest.raises(CohortError, match="resulted_hours"):
        canonical_labs(labs)


def test_duplicate_patient_is_rejected():
    with pytest.raises(CohortError, match="more than once"):
        canonical_patients(pd.DataFrame({"patient_id": ["A", "A"]}))


def test_missing_folder_and_orphan_labs(tmp_path, small_cohort):
    with pytest.raises(CohortError, match="does not exist"):
        read_cohort(tmp_path / "nope")
    cohort = small_cohort
    write_cohort(cohort, tmp_path / "c")
    back = read_cohort(tmp_path / "c")
    assert len(back.labs) == len(cohort.labs) and len(back.patients) == len(cohort.patients)
    patients = cohort.patients.iloc[1:]
    patients.to_parquet(tmp_path / "c" / "patients.parquet", index=False)
    with pytest.raises(CohortError, match="not in patients.parquet"):
        read_cohort(tmp_path / "c")
