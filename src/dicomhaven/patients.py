"""The researcher's view of a patient: what the catalogue holds under a pseudonym."""

from __future__ import annotations

import json

from sqlalchemy import Engine, func, select

from dicomhaven.catalogue import ClinicalRecord, LedgerObject, make_sessionmaker
from dicomhaven.consent import ConsentRegister

__all__ = ["pseudonyms", "summarise"]


def summarise(engine: Engine, pseudonym: str) -> dict[str, object]:
    """Objects by modality, the consent decision in force and clinical records."""
    with make_sessionmaker(engine)() as session:
        objects = {
            modality or "unknown": count
            for modality, count in session.execute(
                select(LedgerObject.modality, func.count())
                .where(LedgerObject.pseudonym == pseudonym)
                .group_by(LedgerObject.modality)
            )
        }
        clinical = [
            json.loads(data)
            for data in session.scalars(
                select(ClinicalRecord.data)
                .where(ClinicalRecord.pseudonym == pseudonym)
                .order_by(ClinicalRecord.id)
            )
        ]
    consent = ConsentRegister(engine).status_of(pseudonym)
    return {
        "pseudonym": pseudonym,
        "objects": objects,
        "consent": consent.value if consent else None,
        "clinical": clinical,
    }


def pseudonyms(engine: Engine) -> list[str]:
    """Every master pseudonym with at least one object, in order of first receipt."""
    with make_sessionmaker(engine)() as session:
        rows = session.execute(
            select(LedgerObject.pseudonym, func.min(LedgerObject.id))
            .where(LedgerObject.pseudonym.is_not(None))
            .group_by(LedgerObject.pseudonym)
            .order_by(func.min(LedgerObject.id))
        )
        return [str(pseudonym) for pseudonym, _ in rows]
