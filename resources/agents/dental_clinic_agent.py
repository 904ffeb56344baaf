"""A longer business example: the receptionist of a dental clinic.

Shows what a real agent needs beyond one-line tools: typed parameters with descriptions (Annotated and
docstring `Args:`), an enum, defaults, async tools with declared timeouts, per-conversation state
(`self.state`, private to each call), and lifecycle hooks.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from datetime import date, timedelta
from typing import Annotated

from agent_sdk import Agent, ToolCall, tool

log = logging.getLogger(__name__)


class Treatment(enum.Enum):
    CHECKUP = "checkup"
    CLEANING = "cleaning"
    FILLING = "filling"
    WHITENING = "whitening"


PRICES_EUR = {Treatment.CHECKUP: 45, Treatment.CLEANING: 70, Treatment.FILLING: 120, Treatment.WHITENING: 250}
_PATIENTS = {
    "P-1001": {"name": "Maria Silva", "phone": "+351 912 000 111", "insured": True},
    "P-1002": {"name": "João Costa", "phone": "+351 913 222 333", "insured": False},
}
_TAKEN: set[tuple[str, str]] = {(str(date.today() + timedelta(days=1)), "09:00")}
_SLOTS = ("09:00", "10:00", "11:30", "14:00", "16:30")


class DentalClinicAgent(Agent):
    agent_id = "dental-clinic"

    @tool
    def lookup_patient(self, patient_id: Annotated[str, "Patient number, like P-1001"]) -> dict[str, object]:
        """Find a patient's record and remember them for the rest of the call."""
        patient = _PATIENTS.get(patient_id.strip().upper())
        if patient is None:
            return {"found": False, "hint": "ask the caller to spell the patient number"}
        self.state["patient_id"] = patient_id.strip().upper()
        return {"found": True, **patient}

    @tool(timeout=5)
    async def available_slots(self, day: str, treatment: Treatment = Treatment.CHECKUP) -> dict[str, object]:
        """List free appointment times on a day.

        Args:
            day: The day, YYYY-MM-DD.
            treatment: What the appointment is for; whitening needs a morning slot.
        """
        await asyncio.sleep(0.01)  # stands for a calendar API call
        treatment = Treatment(treatment)
        slots = [s for s in _SLOTS if (day, s) not in _TAKEN]
        if treatment is Treatment.WHITENING:
            slots = [s for s in slots if s < "12:00"]
        return {"day": day, "treatment": treatment.value, "free": slots}

    @tool(timeout=10)
    async def book_appointment(
        self,
        day: Annotated[str, "YYYY-MM-DD"],
        time: Annotated[str, "HH:MM, one of the free slots"],
        treatment: Treatment = Treatment.CHECKUP,
        notes: str = "",
    ) -> dict[str, object]:
        """Book a slot for the patient identified earlier in this call."""
        patient_id = self.state.get("patient_id")
        if patient_id is None:
            raise PermissionError("look the patient up first (lookup_patient)")
        if (day, time) in _TAKEN or time not in _SLOTS:
            return {"booked": False, "reason": f"{day} {time} is not free"}
        _TAKEN.add((day, time))
        self.state.setdefault("booked", []).append((day, time))
        return {
            "booked": True,
            "patient_id": patient_id,
            "day": day,
            "time": time,
            "treatment": Treatment(treatment).value,
            "notes": notes,
        }

    @tool
    def quote_price(self, treatment: Treatment) -> dict[str, object]:
        """Price of a treatment in euros; insured patients pay 30 % less."""
        price = PRICES_EUR[Treatment(treatment)]
        insured = bool(_PATIENTS.get(self.state.get("patient_id", ""), {}).get("insured"))
        return {
            "treatment": Treatment(treatment).value,
            "price_eur": round(price * (0.7 if insured else 1), 2),
            "insurance_applied": insured,
        }

    @tool
    def cancel_appointment(self, day: str, time: str) -> dict[str, object]:
        """Cancel an appointment booked during this call."""
        booked = self.state.get("booked", [])
        if (day, time) not in booked:
            return {"cancelled": False, "reason": "only appointments booked in this call can be cancelled here"}
        booked.remove((day, time))
        _TAKEN.discard((day, time))
        return {"cancelled": True, "day": day, "time": time}

    def on_conversation_started(self, conversation_id: str) -> None:
        log.info("receptionist on call %s", conversation_id)

    def on_tool_called(self, tool_call: ToolCall) -> None:
        log.info("%s(%s)", tool_call.tool_name, tool_call.arguments)

    def on_conversation_ended(self, conversation_id: str) -> None:
        log.info("call %s over; booked %s", conversation_id, self.state.get("booked", []))

    def on_error(self, error_type: str, message: str, details: dict[str, object]) -> None:
        log.warning("%s: %s", error_type, message)
