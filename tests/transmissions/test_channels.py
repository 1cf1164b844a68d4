"""The channel seam: every channel a profile can name has a package in the
registry, and every channel's errors are the engine's one hierarchy."""

from __future__ import annotations

import pytest

from docflow.models import Channel
from transmissions.channels.connect import errors as connect_errors
from transmissions.channels.mesh import errors as mesh_errors
from transmissions.channels.registry import CHANNELS, DEFAULT, channel_named
from transmissions.engine import errors


def test_every_channel_a_profile_can_name_has_its_package_in_the_registry():
    assert set(CHANNELS) == set(Channel.values)
    assert all(channel.name == name for name, channel in CHANNELS.items())


def test_a_channel_nobody_registered_falls_back_to_the_default():
    assert channel_named("print-and-post") is DEFAULT
    assert DEFAULT.name == Channel.CONNECT


@pytest.mark.parametrize(
    ("error", "kind", "retry_safe"),
    [
        (connect_errors.ConnectUnavailable, errors.ChannelUnavailable, True),
        (connect_errors.ConnectMalformedRead, errors.ChannelUnavailable, True),
        (connect_errors.ConnectOutcomeUnknown, errors.ChannelOutcomeUnknown, False),
        (connect_errors.ConnectMalformedAnswer, errors.ChannelOutcomeUnknown, False),
        (connect_errors.ConnectRefused, errors.ChannelRefused, False),
        (connect_errors.ConnectAuthFailed, errors.ChannelAuthFailed, False),
        (
            connect_errors.ConnectConfigurationError,
            errors.ChannelConfigurationError,
            False,
        ),
        (mesh_errors.MeshUnavailable, errors.ChannelUnavailable, True),
        (mesh_errors.MeshMalformedRead, errors.ChannelUnavailable, True),
        (mesh_errors.MeshOutcomeUnknown, errors.ChannelOutcomeUnknown, False),
        (mesh_errors.MeshMalformedAnswer, errors.ChannelOutcomeUnknown, False),
        (mesh_errors.MeshRefused, errors.ChannelRefused, False),
        (mesh_errors.MeshAuthFailed, errors.ChannelAuthFailed, False),
        (
            mesh_errors.MeshConfigurationError,
            errors.ChannelConfigurationError,
            False,
        ),
    ],
)
def test_each_channel_error_is_one_kind_of_the_one_hierarchy(error, kind, retry_safe):
    assert issubclass(error, kind)
    assert issubclass(error, errors.ChannelError)
    assert error.retry_safe is retry_safe


def test_a_retry_after_survives_on_either_channel():
    assert connect_errors.ConnectUnavailable("429", retry_after=7.0).retry_after == 7.0
    assert mesh_errors.MeshUnavailable("429").retry_after is None
