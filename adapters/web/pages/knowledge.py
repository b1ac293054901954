"""FAQ and catalog: list, edit, and import files with the same row-numbered errors as
`/faq import` and `shopkeep import` (the same parsers and the same store)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from adapters.web.context import Ctx, page
from bot.errors import UserInputError
from bot.knowledge.commands import valid_entry
from bot.knowledge.feature import KnowledgeFeature
from bot.knowledge.files import MAX_FILE_BYTES, ImportFailed, parse_catalog, parse_faq
from bot.knowledge.models import PRODUCT_FIELDS, Product, RowErrors, product_from_row
from bot.knowledge.store import KnowledgeStore, texts_to_embed

NEW = "new"


def _knowledge(ctx: Ctx) -> KnowledgeStore:
    return ctx.web.app.feature(KnowledgeFeature).knowledge


@page
async def faq_list(ctx: Ctx) -> Response:
    if ctx.request.method == "POST":  # the "new entry" form posts here
        return await _save_faq(ctx, None)
    entries = await _knowledge(ctx).faq_entries(ctx.merchant)
    return ctx.render("faq.html", active_nav="faq", entries=entries)


@page
async def faq_edit(ctx: Ctx) -> Response:
    entry_id = ctx.request.path_params["entry"]
    current = None
    if entry_id != NEW:
        current = await _knowledge(ctx).faq(ctx.merchant, entry_id)
        if current is None:
            return ctx.render("message.html", 404, title="No such FAQ entry",
                              message=f"There is no FAQ entry {entry_id!r}.")
    if ctx.request.method == "POST":
        return await _save_faq(ctx, entry_id if current is not None else None)
    return ctx.render("faq_edit.html", active_nav="faq", entry=current)


async def _save_faq(ctx: Ctx, existing_id: str | None) -> Response:
    raw: dict[str, Any] = {
        "id": existing_id or ctx.field("id"), "question": ctx.field("question"),
        "answer": ctx.field("answer"), "url": ctx.field("url") or None,
        "alternates": [line.strip() for line in ctx.field("alternates").splitlines()
                       if line.strip()],
        "tags": [t.strip() for t in ctx.field("tags").split(",") if t.strip()],
    }
    knowledge = _knowledge(ctx)
    try:
        entry = valid_entry(raw)  # the same checks as /faq add and an import row
        if existing_id is None and await knowledge.faq(ctx.merchant, entry.id) is not None:
            raise UserInputError(f"FAQ entry {entry.id!r} already exists; edit it instead.")
    except UserInputError as exc:
        return ctx.render("faq_edit.html", 400, active_nav="faq", entry=None, form=raw,
                          error=exc.message, is_new=existing_id is None)
    await knowledge.import_faq(ctx.merchant, [entry])
    await ctx.record("faq.edit" if existing_id else "faq.add", f"{entry.id}: {entry.question}")
    return ctx.redirect("/faq", f"Saved FAQ entry {entry.id!r}.")


@page
async def faq_remove(ctx: Ctx) -> Response:
    entry_id = ctx.request.path_params["entry"]
    if not await _knowledge(ctx).remove_faq(ctx.merchant, entry_id):
        raise UserInputError(f"There is no FAQ entry {entry_id!r}.")
    await ctx.record("faq.remove", entry_id)
    return ctx.redirect("/faq", f"Removed FAQ entry {entry_id!r}.")


@page
async def catalog_list(ctx: Ctx) -> Response:
    products = await _knowledge(ctx).products(ctx.merchant)
    return ctx.render("catalog.html", active_nav="catalog", products=products)


@page
async def product_edit(ctx: Ctx) -> Response:
    sku = ctx.request.path_params["sku"]
    knowledge = _knowledge(ctx)
    current = await knowledge.product(ctx.merchant, sku)
    if current is None:
        return ctx.render("message.html", 404, title="No such product",
                          message=f"There is no product with SKU {sku!r}.")
    if ctx.request.method == "GET":
        return ctx.render("product_edit.html", active_nav="catalog", product=current,
                          form=_product_form(current))
    raw: dict[str, Any] = {name: ctx.field(name) for name in PRODUCT_FIELDS}
    raw["sku"] = current.sku
    raw["in_stock"] = "yes" if ctx.field("in_stock") else "no"
    errors = RowErrors()
    product = product_from_row(raw, 1, errors)  # an import row's checks
    if product is None:
        message = "; ".join(m.removeprefix("row 1: ") for m in errors.messages)
        return ctx.render("product_edit.html", 400, active_nav="catalog", product=current,
                          form=raw, error=message)
    await knowledge.import_catalog(ctx.merchant, [product])
    await ctx.record("catalog.edit", f"{product.sku}: {product.name}")
    return ctx.redirect("/catalog", f"Saved product {product.sku}.")


def _product_form(product: Product) -> dict[str, Any]:
    data = product.as_record()
    data["tags"] = ", ".join(product.tags)
    data["price"] = f"{product.price:.2f}"
    return data


@page
async def import_file(ctx: Ctx) -> Response:
    kind = ctx.field("kind") or ctx.request.query_params.get("kind", "faq")
    kind = kind if kind in ("faq", "catalog") else "faq"
    nav = "faq" if kind == "faq" else "catalog"
    if ctx.request.method == "GET":
        return ctx.render("import.html", active_nav=nav, kind=kind)
    upload = ctx.upload("file")
    if upload is None:
        return ctx.render("import.html", 400, active_nav=nav, kind=kind,
                          problems=["Choose a file to import."])
    data = await upload.read(MAX_FILE_BYTES + 1)
    filename = upload.filename or "upload"
    replace = bool(ctx.field("replace"))
    try:  # the parsers of /faq import: every bad row listed, nothing stored
        records: list[Any] = (parse_faq(data, filename) if kind == "faq"
                              else parse_catalog(data, filename))
    except ImportFailed as exc:
        return ctx.render("import.html", 400, active_nav=nav, kind=kind, filename=filename,
                          problems=exc.problems)
    knowledge = _knowledge(ctx)
    merchant, what = ctx.merchant, "FAQ" if kind == "faq" else "Catalog"

    async def work(progress: Any) -> str:
        progress.stage(f"Embedding {len(records)} {'entries' if kind == 'faq' else 'products'}",
                       texts_to_embed(records))
        importer = knowledge.import_faq if kind == "faq" else knowledge.import_catalog
        report = await importer(merchant, records, replace, progress.advance)
        return report.summary(f"{what} from {filename}")

    job = await ctx.web.jobs.start(merchant, f"import-{kind}", f"Importing {filename}",
                                   texts_to_embed(records), work)
    await ctx.record(f"{kind}.import", f"{filename}: {len(records)} rows"
                     f"{' (replace)' if replace else ''}")
    return ctx.redirect(f"/jobs/{job}?back=/{'faq' if kind == 'faq' else 'catalog'}")
