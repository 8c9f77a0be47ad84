"""The settings a campaign carries (stored in Campaign.settings), validated with pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.campaigns.timing import QuietHours


class ABTest(BaseModel):
    """A/B: a test share goes out split over the variants; the rest waits for the winner."""

    model_config = ConfigDict(extra="forbid")

    variants: dict[str, str] = Field(min_length=2, description="variant name -> template name")
    test_share: float = Field(default=0.2, gt=0, le=1)
    metric: Literal["open", "click", "reply"] = "open"
    wait_minutes: float = Field(default=60, ge=0)

    @field_validator("variants")
    @classmethod
    def _short_names(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not name or len(name) > 20 for name in value):
            raise ValueError("variant names are 1-20 characters")
        return value


class FrequencyCap(BaseModel):
    """At most `max_messages` campaign messages per customer within `days`, across campaigns."""

    model_config = ConfigDict(extra="forbid")

    max_messages: int = Field(ge=1)
    days: float = Field(gt=0)


class CampaignConfig(BaseModel):
    """What a marketer may set; the scheduler's own notes live beside it under `state`."""

    model_config = ConfigDict(extra="forbid")

    sender: str | None = None
    sender_name: str | None = None
    default_language: str = "en"
    quiet_hours: str | None = None
    rate: float | None = Field(default=None, gt=0)
    ab: ABTest | None = None
    frequency_cap: FrequencyCap | None = None
    error_threshold: float = Field(default=0.25, gt=0, le=1)
    error_min_sample: int = Field(default=50, ge=1)
    max_attempts: int = Field(default=4, ge=1, le=20)
    require_opt_in: bool = False
    track: bool = True
    state: dict[str, Any] = Field(default_factory=dict)

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            QuietHours.parse(value)
        return value

    def quiet(self) -> QuietHours | None:
        return QuietHours.parse(self.quiet_hours) if self.quiet_hours else None


def load(settings: dict[str, Any]) -> CampaignConfig:
    """The config stored on a campaign row."""
    return CampaignConfig.model_validate(settings or {})
