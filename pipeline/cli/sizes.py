"""A click parameter type for image sizes written ``WIDTHxHEIGHT``."""

from __future__ import annotations

import click


class SizeType(click.ParamType):
    name = "WxH"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            width, height = (int(part) for part in str(value).lower().split("x"))
        except ValueError:
            self.fail(f"{value!r} is not a size like 480x480", param, ctx)
        if width < 1 or height < 1:
            self.fail(f"{value!r}: width and height must be positive", param, ctx)
        return width, height


SIZE = SizeType()
