import pytest

from churn_kfp import __version__
from churn_kfp.orchestration.image import (
    IMAGE_REPOSITORY,
    PlaceholderImageError,
    component_image,
    is_placeholder,
    repository_of,
    require_published_image,
)


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


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "image",
    [f"reg.example/ml/churn@{DIGEST}", f"reg.example:5000/ml/churn:1.2@{DIGEST}"],
)
def test_digest_references_are_kept_verbatim(image):
    assert component_image({"CHURN_IMAGE": image}) == image


@pytest.mark.parametrize(
    "image",
    ["reg.example/churn@sha256:abc", "reg.example/churn@sha256:" + "A" * 64, "reg.example/c@md5:x"],
)
def test_malformed_digests_are_refused(image):
    with pytest.raises(ValueError, match="sha256:<64 lowercase hex>"):
        component_image({"CHURN_IMAGE": image})


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("reg.example:5000/ml/churn:1.2", "reg.example:5000/ml/churn"),
        (f"reg.example/ml/churn@{DIGEST}", "reg.example/ml/churn"),
        (f"reg.example/ml/churn:1.2@{DIGEST}", "reg.example/ml/churn"),
        ("churn:1", "churn"),
    ],
)
def test_repository_of(image, repository):
    assert repository_of(image) == repository


def test_the_default_image_is_the_placeholder_and_refused_with_the_fix():
    image = component_image({})
    assert is_placeholder(image)
    with pytest.raises(PlaceholderImageError) as refused:
        require_published_image(image)
    message = str(refused.value)
    assert image in message
    assert "make images" in message and "--image" in message and "CHURN_IMAGE" in message


@pytest.mark.parametrize(
    "image", ["reg.example/ml/churn-kfp:0.1.0", f"ghcr.io/someone/churn-kfp@{DIGEST}"]
)
def test_published_images_pass(image):
    assert not is_placeholder(image)
    assert require_published_image(image) == image


def test_a_digest_of_the_placeholder_repository_is_still_the_placeholder():
    assert is_placeholder(f"{IMAGE_REPOSITORY}@{DIGEST}")
