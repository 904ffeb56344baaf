"""The seed agent written for the public conversimple-sdk (0.2.4). Moving it to agent_sdk: change the import.

    conversimple-dispatcher --api-key KEY \
        --platform-url ws://127.0.0.1:8765/customer_sdk/websocket --search-path resources/agents/conversimple_sdk
"""

from conversimple import ConversimpleAgent, tool, tool_async


class SeedAgent(ConversimpleAgent):
    agent_id = "seed"

    @tool("Get the current weather for a location")
    def get_weather(self, location: str) -> dict:
        return {"location": location, "temperature_c": 21, "condition": "sunny"}

    @tool_async("Book an appointment and return its confirmation")
    async def book_appointment(self, date: str, time: str) -> dict:
        return {"confirmed": True, "date": date, "time": time, "confirmation": "APT-0001"}

    @tool("Look a customer up by id")
    def lookup_customer(self, id: str) -> dict:
        if id != "42":
            raise LookupError(f"no customer with id {id}")
        return {"id": "42", "name": "Ada Lovelace", "tier": "gold"}
