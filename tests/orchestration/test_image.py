import pytest

from churn_kfp import __version__
from churn_kfp.orchestration.image import IMAGE_REPOSITORY, component_image


def test_default_image_is_tagged_with_the_package_version():
    assert component_image({}) == f"{IMAGE_REPOSITORY}:{__version__}"


def test_override_is_used_verbatim():
    assert component_image({"CHURN_IMAGE": "reg.example:5000/churn:1.2"}) == (
        "reg.example:5000/churn:1.2"
    )


def test_digest_override_is_accepted():
    image = "reg.example/churn@sha256:" + "a" * 64
    assert component_image({"CHURN_IMAGE": image}) == image


@pytest.mark.parametrize("image", ["reg.example/churn:latest", "reg.example:5000/churn", "churn"])
def test_untagged_or_latest_images_are_refused(image):
    with pytest.raises(ValueError, match="explicit tag"):
        component_image({"CHURN_IMAGE": image})
