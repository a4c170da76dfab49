"""`disco-bench build`: the container image that `run --executor docker` runs stages in."""

from __future__ import annotations

import click

from harness.cli import cli
from harness.docker_image import build_image, image_recipe


@cli.command()
@click.option(
    "--base-image",
    default=None,
    metavar="IMAGE",
    help="Base image with python3, pip, torch and torchvision (default: the Dockerfile's BASE_IMAGE, a pinned pytorch/pytorch CUDA devel image).",
)
@click.option(
    "--cpu",
    is_flag=True,
    help="The CPU variant: skips the detectron2 CUDA build and NVIDIA DALI, so the base needs no CUDA toolkit.",
)
@click.option(
    "--network",
    "network_mode",
    default=None,
    metavar="MODE",
    help="Network of the build's RUN steps, e.g. host (default: the engine's default bridge).",
)
@click.option("--no-cache", is_flag=True, help="Rebuild every layer.")
def build(base_image: str | None, cpu: bool, network_mode: str | None, no_cache: bool) -> None:
    """Build the image disco-bench:<version>-<hash12> from docker/Dockerfile and print its tag.

    The hash covers the build context (Dockerfile, requirements.lock, package sources) and the
    build args, so `run --executor docker` finds the image built from the files checked out."""
    tag = build_image(image_recipe(base_image, cpu), network_mode=network_mode, no_cache=no_cache)
    click.echo(tag)
