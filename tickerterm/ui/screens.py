"""Modal screens: the help listing every key, and the fuzzy product picker."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


class HelpScreen(ModalScreen[None]):
    """Every key binding with what it does; any of escape, ? or q closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: auto; max-height: 100%;
                            border: round $primary; background: $surface; padding: 0 1; }
    HelpScreen Static { width: 100%; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, keys: list[tuple[str, str]], *, log_file: str | None = None) -> None:
        super().__init__()
        self.keys = keys
        self.log_file = log_file

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, description in self.keys:
            table.add_row(Text(key), Text(description))  # plain text: "[watchlists]" is not markup
        with VerticalScroll():  # a small screen scrolls it
            yield Static(Text("Keys", style="bold"))
            yield Static(table, id="help-keys")
            yield Static(Text("ctrl+p opens the command palette with every action.", style="dim"))
            if self.log_file:
                yield Static(Text(f"Log lines go to {self.log_file}", style="dim"), id="help-log")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class ProductPicker(ModalScreen[str | None]):
    """Type to filter the products fuzzily; enter picks, escape cancels."""

    DEFAULT_CSS = """
    ProductPicker { align: center middle; }
    ProductPicker > Vertical { width: 40; height: auto; max-height: 80%; border: round $primary;
                               background: $surface; }
    ProductPicker OptionList { height: auto; max-height: 12; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="picker.cancel")]

    def __init__(self, products: list[str]) -> None:
        super().__init__()
        self.products = products

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="product…", id="picker-input")
            yield OptionList(*[Option(p, id=p) for p in self.products], id="picker-list")

    def on_input_changed(self, event: Input.Changed) -> None:
        matcher = Matcher(event.value) if event.value else None
        ranked = sorted(
            ((matcher.match(p) if matcher else 1.0, p) for p in self.products), key=lambda x: -x[0]
        )
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(p, id=p) for score, p in ranked if score > 0])
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None and options.option_count:
            self.dismiss(options.get_option_at_index(options.highlighted).id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AlertForm(ModalScreen[str | None]):
    """A rule for the selected product (``BTC-USD > 65000``...): enter adds it when it is a rule (else
    the form says why and stays), escape cancels. Below it, the rules already set and whether each is
    waiting (armed) or has fired."""

    DEFAULT_CSS = """
    AlertForm { align: center middle; }
    AlertForm > Vertical { width: 72; max-width: 100%; height: auto; max-height: 100%;
                           border: round $primary; background: $surface; padding: 0 1; }
    AlertForm #alert-error { color: $error; height: auto; }
    AlertForm #alert-rules { height: auto; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="alert.cancel")]

    def __init__(self, start: str, rules: list[tuple[str, bool]], check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.start = start
        self.rules = rules
        self.check = check
        """Why a text is not a rule, or None."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("New alert (enter adds, escape cancels)", style="bold"))
            yield Input(value=self.start, id="alert-input")
            yield Static("", id="alert-error")
            lines = [f"{'armed ' if armed else 'fired '} {rule}" for rule, armed in self.rules]
            yield Static(
                Text(
                    "\n".join(lines) if lines else "no alerts yet: e.g. BTC-USD > 65000, ETH-USD move 1% 5m"
                ),
                id="alert-rules",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problem = self.check(event.value)
        if problem:
            self.query_one("#alert-error", Static).update(Text(problem))
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
