"""The seed's three tools: weather, appointments and customer lookup.

Run it against a platform:
    conversimple-agent run resources/agents/seed_agent.py --url ws://127.0.0.1:8765/customer_sdk/websocket \
        --api-key KEY   (the key `conversimple-platform serve` prints, or the desktop app shows)
"""

from __future__ import annotations

from typing import Annotated

from agent_sdk import Agent, tool

_CUSTOMERS = {
    "42": {"id": "42", "name": "Ada Lovelace", "tier": "gold", "open_tickets": 1},
    "7": {"id": "7", "name": "Alan Turing", "tier": "silver", "open_tickets": 0},
}


class SeedAgent(Agent):
    agent_id = "seed"

    @tool
    def get_weather(self, location: Annotated[str, "City name, e.g. Lisbon"]) -> dict[str, object]:
        """Get the current weather for a location."""
        return {"location": location, "temperature_c": 21, "condition": "sunny"}

    @tool
    async def book_appointment(
        self,
        date: Annotated[str, "Day in ISO format, YYYY-MM-DD"],
        time: Annotated[str, "Time of day, HH:MM, 24-hour clock"],
    ) -> dict[str, object]:
        """Book an appointment and return its confirmation."""
        bookings = self.state.setdefault("bookings", [])
        bookings.append(f"{date} {time}")
        return {"confirmed": True, "date": date, "time": time, "confirmation": f"APT-{len(bookings):04d}"}

    @tool
    def lookup_customer(self, id: Annotated[str, "The customer's id"]) -> dict[str, object]:
        """Look a customer up by id."""
        customer = _CUSTOMERS.get(id)
        if customer is None:
            raise LookupError(f"no customer with id {id}")
        return customer

    def on_conversation_started(self, conversation_id: str) -> None:
        print(f"conversation started: {conversation_id}", flush=True)

    def on_conversation_ended(self, conversation_id: str) -> None:
        print(f"conversation ended: {conversation_id}", flush=True)
