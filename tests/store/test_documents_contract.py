"""Store contract: deployed workflow documents (both dialects)."""

from __future__ import annotations

from opsloom.store import Store
from opsloom.store.document import DocumentRecord


def doc(version: str, at: float, text: str = "do: []", name: str = "restart") -> DocumentRecord:
    return DocumentRecord.of("ops", name, version, f"# {version}\n{text}", at)


async def test_save_document__stores_each_version_once(store: Store) -> None:
    first, created = await store.save_document(doc("1.0.0", 100.0))
    assert created and first.digest == doc("1.0.0", 100.0).digest
    again, created = await store.save_document(doc("1.0.0", 200.0, text="do: [changed]"))
    assert not created
    assert again == first  # the stored version is never replaced
    assert await store.get_document("ops", "restart", "1.0.0") == first


async def test_get_document__latest_is_the_last_deployed(store: Store) -> None:
    await store.save_document(doc("1.0.0", 100.0))
    await store.save_document(doc("0.9.0", 300.0))
    await store.save_document(doc("2.0.0", 200.0))
    latest = await store.get_document("ops", "restart")
    assert latest is not None and latest.version == "0.9.0"
    assert await store.get_document("ops", "restart", "3.0.0") is None
    assert await store.get_document("ops", "other") is None


async def test_list_documents__oldest_first_and_since(store: Store) -> None:
    await store.save_document(doc("1.0.0", 100.0))
    await store.save_document(doc("1.0.0", 150.0, name="cleanup"))
    await store.save_document(doc("2.0.0", 200.0))
    every = await store.list_documents()
    assert [(d.name, d.version) for d in every] == [
        ("restart", "1.0.0"),
        ("cleanup", "1.0.0"),
        ("restart", "2.0.0"),
    ]
    recent = await store.list_documents(since=150.0)
    assert [(d.name, d.version) for d in recent] == [("cleanup", "1.0.0"), ("restart", "2.0.0")]
    assert recent[-1].workflow == "ops/restart" and recent[-1].text.startswith("# 2.0.0")
