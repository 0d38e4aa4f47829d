import pandas as pd

from churn_kfp.loop.reference import reference_sample


def test_reference_sample_is_seeded_and_capped_per_split():
    table = pd.DataFrame({"split": ["train"] * 50 + ["test"] * 10, "x": range(60)})
    sample = reference_sample(table, max_rows_per_split=20)
    assert sample["split"].value_counts().to_dict() == {"train": 20, "test": 10}
    assert sample.equals(reference_sample(table, max_rows_per_split=20))
