"""Which adapter sends each channel, and the templates each channel's adapter knows.

Templates are adapter ids (the adapter's platform holds their text): an offer naming a template
its channel's adapter does not know is refused when the offer is written, not at send time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.base import ChannelAdapter


@dataclass
class ChannelAdapters:
    adapters: dict[int, ChannelAdapter] = field(default_factory=dict)
    templates: dict[int, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, adapters: Mapping[int, ChannelAdapter], templates: Mapping[str, list[str]]) -> ChannelAdapters:
        """`templates` by channel name (`SMS`, `MOBILE_APP`, ...), as configured."""
        return cls(dict(adapters), {int(Channel[name]): frozenset(ids) for name, ids in templates.items()})

    def adapter(self, channel: int) -> ChannelAdapter | None:
        return self.adapters.get(channel)

    def knows_template(self, channel: int, template_id: str) -> bool:
        return template_id in self.templates.get(channel, frozenset())

    async def close(self) -> None:
        for adapter in {id(a): a for a in self.adapters.values()}.values():
            await adapter.close()
