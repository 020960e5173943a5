"""One helper for every list endpoint: paging, sorting and equality filters.

Declare what a list may be sorted and filtered by, once, next to the route::

    ORG_LIST = ListSpec(
        sort={"code": Org.code, "name": Org.name_en, "created_at": Org.created_at},
        filters={"kind": Org.kind, "parent_id": Org.parent_id},
        default_sort="code",
    )

    @router.get("/api/orgs")
    def list_orgs(
        principal: Annotated[Principal, Depends(require("orgs:read"))],
        session: DbSession,
        params: Annotated[ListParams, Depends(ORG_LIST.params)],
    ) -> Page[OrgRead]:
        return service.list_orgs(session=session, principal=principal, params=params)

and in the service, after applying the org scope::

    return paginate(session=session, query=select(Org).where(...), params=params, item=OrgRead)

The query string then takes ``limit`` (1..``max_limit``), ``offset``, ``sort``
(``sort=-created_at,code``: comma-separated whitelisted fields, ``-`` for descending) and
one ``name=value`` equality filter per whitelisted field (shown in the OpenAPI spec). An
unknown sort field, an unknown query parameter or a filter value of the wrong type →
422 problem+json. The answer is a :class:`Page`: ``items``, ``total``, ``limit``,
``offset`` and a relative ``next`` link (``null`` on the last page).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Query, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from safecity.platform.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 1_000_000_000
MAX_SORT_KEYS = 5
PAGE_PARAMS = frozenset({"limit", "offset", "sort"})


class Page(BaseModel, Generic[T]):
    """One page of a list: the items, how many there are in all, and the next page's link."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next: str | None = None


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.field


def parse_sort(raw: str | None, allowed: Collection[str]) -> list[SortKey]:
    """Parse ``"-created_at,code"`` into sort keys; only ``allowed`` fields, each once.

    ``None`` or an empty string means "no explicit sort". Raises :class:`InvalidInput`.
    """
    if raw is None or raw.strip() == "":
        return []
    keys: list[SortKey] = []
    seen: set[str] = set()
    for part in raw.split(","):
        token = part.strip()
        descending = token.startswith("-")
        name = token[1:] if token[:1] in ("-", "+") else token
        if not name:
            raise InvalidInput("empty sort field", allowed=sorted(allowed))
        if name not in allowed:
            raise InvalidInput(
                f"cannot sort by {name[:64]!r}; allowed: {', '.join(sorted(allowed))}",
                allowed=sorted(allowed),
            )
        if name in seen:
            raise InvalidInput(f"sort field {name!r} given twice")
        seen.add(name)
        keys.append(SortKey(name, descending))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidInput(f"at most {MAX_SORT_KEYS} sort fields")
    return keys


def format_sort(keys: Sequence[SortKey]) -> str:
    return ",".join(str(k) for k in keys)


def _python_type(column: Any) -> type[Any]:
    try:
        return column.type.python_type  # type: ignore[no-any-return]
    except (AttributeError, NotImplementedError):
        return str


def parse_filter_value(name: str, raw: str, column: Any) -> Any:
    """Convert the query-string value ``raw`` to the column's Python type (422 if it can't)."""
    py_type = _python_type(column)
    length = getattr(getattr(column, "type", None), "length", None)
    if py_type is str:
        if "\x00" in raw:
            raise InvalidInput(f"filter {name!r}: NUL characters are not allowed")
        if isinstance(length, int) and len(raw) > length:
            raise InvalidInput(f"filter {name!r}: at most {length} characters")
        return raw
    try:
        value = TypeAdapter(py_type).validate_strings(raw)
    except ValidationError:
        raise InvalidInput(
            f"filter {name!r}: {raw[:64]!r} is not a valid {py_type.__name__}"
        ) from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidInput(f"filter {name!r}: a timezone is required (e.g. 2025-01-31T08:00Z)")
    return value


@dataclass(frozen=True)
class ListParams:
    """What the client asked for, validated against a :class:`ListSpec`."""

    spec: ListSpec
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    sort: tuple[SortKey, ...] = ()
    filters: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()

    def next_link(self, total: int) -> str | None:
        if self.offset + self.limit >= total:
            return None
        items = [(k, v) for k, v in self.query if k != "offset"]
        items.append(("offset", str(self.offset + self.limit)))
        return f"{self.path}?{urlencode(items)}"


class ListSpec:
    """The sortable fields and equality filters of one list endpoint."""

    def __init__(
        self,
        *,
        sort: Mapping[str, Any],
        filters: Mapping[str, Any] | None = None,
        default_sort: str = "",
        tiebreak: Any | None = None,
        default_limit: int = DEFAULT_LIMIT,
        max_limit: int = MAX_LIMIT,
        strict: bool = True,
    ) -> None:
        self.sort_columns = dict(sort)
        self.filter_columns = dict(filters or {})
        clash = set(self.filter_columns) & PAGE_PARAMS
        if clash:
            raise ValueError(f"filter names clash with paging parameters: {sorted(clash)}")
        if not 1 <= default_limit <= max_limit:
            raise ValueError("need 1 <= default_limit <= max_limit")
        self.default_sort = tuple(parse_sort(default_sort, self.sort_columns))
        self.tiebreak = tiebreak
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.strict = strict
        self.params: Callable[..., ListParams] = self._make_dependency()

    def parse(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
        filters: Mapping[str, str | None] | None = None,
        path: str = "",
        query: Sequence[tuple[str, str]] = (),
    ) -> ListParams:
        """Validate raw values (the dependency's work; usable directly from the CLI)."""
        limit = self.default_limit if limit is None else limit
        if not 1 <= limit <= self.max_limit:
            raise InvalidInput(f"limit must be between 1 and {self.max_limit}")
        if not 0 <= offset <= MAX_OFFSET:
            raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}")
        parsed_filters: dict[str, Any] = {}
        for name, raw in (filters or {}).items():
            if raw is None:
                continue
            column = self.filter_columns.get(name)
            if column is None:
                raise InvalidInput(
                    f"cannot filter by {name[:64]!r}; allowed: "
                    + ", ".join(sorted(self.filter_columns)),
                    allowed=sorted(self.filter_columns),
                )
            parsed_filters[name] = parse_filter_value(name, raw, column)
        return ListParams(
            spec=self,
            limit=limit,
            offset=offset,
            sort=tuple(parse_sort(sort, self.sort_columns)) or self.default_sort,
            filters=parsed_filters,
            path=path,
            query=tuple(query),
        )

    def _allowed_query_names(self, request: Request) -> frozenset[str] | None:
        """Every query parameter the matched route declares (None: unknown route)."""
        route = request.scope.get("route")
        dependant = getattr(route, "dependant", None)
        if route is None or dependant is None:
            return None
        names: set[str] = set()
        stack = [dependant]
        while stack:
            current = stack.pop()
            names.update(str(p.alias) for p in getattr(current, "query_params", ()))
            stack.extend(getattr(current, "dependencies", ()))
        return frozenset(names)

    def _make_dependency(self) -> Callable[..., ListParams]:
        spec = self

        def dependency(request: Request, **kwargs: Any) -> ListParams:
            if spec.strict:
                allowed = spec._allowed_query_names(request)
                if allowed is not None:
                    unknown = sorted(set(request.query_params) - allowed)
                    if unknown:
                        raise InvalidInput(
                            f"unknown query parameter {unknown[0][:64]!r}",
                            allowed=sorted(allowed),
                        )
            return spec.parse(
                limit=kwargs.pop("limit"),
                offset=kwargs.pop("offset"),
                sort=kwargs.pop("sort"),
                filters=kwargs,
                path=request.url.path,
                query=list(request.query_params.multi_items()),
            )

        sort_help = "Comma-separated fields, '-' for descending. Allowed: " + ", ".join(
            sorted(self.sort_columns)
        )
        parameters = [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
            inspect.Parameter(
                "limit",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    int, Query(ge=1, le=self.max_limit, description="Items per page.")
                ],
                default=self.default_limit,
            ),
            inspect.Parameter(
                "offset",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")],
                default=0,
            ),
            inspect.Parameter(
                "sort",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[str | None, Query(max_length=200, description=sort_help)],
                default=None,
            ),
        ]
        for name in sorted(self.filter_columns):
            parameters.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[
                        str | None, Query(max_length=1000, description=f"Equals filter on {name}.")
                    ],
                    default=None,
                )
            )
        dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            parameters, return_annotation=ListParams
        )
        dependency.__name__ = "list_params"
        return dependency


def _tiebreak_columns(query: Select[Any], spec: ListSpec) -> list[Any]:
    if spec.tiebreak is not None:
        return [spec.tiebreak]
    descriptions = query.column_descriptions
    entity = descriptions[0].get("entity") if descriptions else None
    if entity is None:
        return []
    mapper = sa_inspect(entity, raiseerr=False)
    return list(getattr(mapper, "primary_key", ()))


def apply(query: Select[Any], params: ListParams) -> Select[Any]:
    """Add the filters and ordering of ``params`` to ``query`` (no paging)."""
    spec = params.spec
    for name, value in params.filters.items():
        query = query.where(spec.filter_columns[name] == value)
    order: list[ColumnElement[Any] | UnaryExpression[Any]] = []
    for key in params.sort:
        column = spec.sort_columns[key.field]
        order.append(column.desc() if key.descending else column.asc())
    order.extend(c.asc() for c in _tiebreak_columns(query, spec))
    return query.order_by(*order)


def paginate(
    *,
    session: Session,
    query: Select[Any],
    params: ListParams,
    item: type[T] | Callable[[Any], T],
    scalars: bool = True,
) -> Page[T]:
    """Run ``query`` with the filters, sort and page of ``params``; return a :class:`Page`.

    ``item`` is a Pydantic model (rows are read with ``from_attributes``) or a function
    turning a row into an item. ``scalars=False`` passes whole rows instead of the first
    column's objects.
    """
    filtered = apply(query, params)
    total = session.scalar(select(func.count()).select_from(filtered.order_by(None).subquery()))
    page_query = filtered.limit(params.limit).offset(params.offset)
    rows: Sequence[Any] = (
        session.scalars(page_query).all() if scalars else session.execute(page_query).all()
    )
    convert: Callable[[Any], T]
    if isinstance(item, type) and issubclass(item, BaseModel):
        model = item

        def convert(row: Any) -> T:
            return model.model_validate(row, from_attributes=True)  # type: ignore[return-value]
    else:
        convert = item  # type: ignore[assignment]
    total_count = int(total or 0)
    return Page[Any](
        items=[convert(r) for r in rows],
        total=total_count,
        limit=params.limit,
        offset=params.offset,
        next=params.next_link(total_count),
    )
