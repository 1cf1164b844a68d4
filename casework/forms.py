"""Staff page input: shape checks only. Rules live in the casework services."""

from __future__ import annotations

import base64
import binascii
import json

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from casework.models import OtherRouteChannel
from casework.queue_order import PRIORITY, SORT_CHOICES, QueuePosition

REASON_MAX_LENGTH = 1000

SCOPE_TEAM = "team"
SCOPE_MINE = "mine"

ASSIGNEE_ANY = ""
ASSIGNEE_ME = "me"
ASSIGNEE_NOBODY = "nobody"

AGE_CHOICES = [
    ("", "Any age"),
    ("1", "Older than 1 day"),
    ("3", "Older than 3 days"),
    ("7", "Older than 7 days"),
    ("28", "Older than 28 days"),
]


def cursor_encode(position: QueuePosition) -> str:
    """The keyset position after one row of one order, opaque in the URL."""
    raw = json.dumps(
        [
            position.sort,
            position.as_of.isoformat(),
            position.part,
            [value.isoformat() for value in position.values],
            position.pk,
        ]
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(value: str) -> QueuePosition | None:
    """The keyset position, or None for anything that is not one of ours."""
    try:
        padded = value + "=" * (-len(value) % 4)
        sort, as_of, part, values, pk = json.loads(
            base64.urlsafe_b64decode(padded.encode())
        )
        moments = [parse_datetime(moment) for moment in [as_of, *values]]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if any(moment is None or timezone.is_naive(moment) for moment in moments):
        return None
    if not isinstance(pk, int) or not isinstance(part, int):
        return None
    position = QueuePosition(
        sort=sort, as_of=moments[0], part=part, values=tuple(moments[1:]), pk=pk
    )
    return position if position.is_valid() else None


class QueueFilterForm(forms.Form):
    """The queue's filters and order, from the query string. Each value that does
    not parse is reported by its field; the others still apply."""

    scope = forms.ChoiceField(
        choices=[(SCOPE_TEAM, "Team queue"), (SCOPE_MINE, "My items")],
        required=False,
        error_messages={"invalid_choice": "Choose the team queue or my items."},
    )
    bucket = forms.MultipleChoiceField(
        label="Kind of problem",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": "Choose kinds of problem from the list (%(value)s is "
            "not one of them)."
        },
    )
    team = forms.TypedChoiceField(
        label="Team",
        coerce=int,
        empty_value=None,
        required=False,
        error_messages={"invalid_choice": "Choose a team from the list."},
    )
    reason = forms.CharField(
        label="Reason code",
        max_length=64,
        required=False,
        error_messages={"max_length": "Enter a reason code of 64 characters or fewer."},
    )
    destination = forms.RegexField(
        label="Destination practice (ODS code)",
        regex=r"^\s*[A-Za-z0-9]{3,10}\s*$",
        required=False,
        max_length=20,
        error_messages={
            "invalid": "Enter an ODS code of 3 to 10 letters and numbers, like A81001.",
            "max_length": "Enter an ODS code of 3 to 10 letters and numbers, like "
            "A81001.",
        },
    )
    age = forms.ChoiceField(
        label="Age",
        choices=AGE_CHOICES,
        required=False,
        error_messages={"invalid_choice": "Choose an age from the list."},
    )
    overdue = forms.BooleanField(label="Overdue only", required=False)
    assignee = forms.ChoiceField(
        label="Assigned to",
        choices=[
            (ASSIGNEE_ANY, "Anyone or nobody"),
            (ASSIGNEE_ME, "Me"),
            (ASSIGNEE_NOBODY, "Nobody (unassigned)"),
        ],
        required=False,
        error_messages={"invalid_choice": "Choose who the items are assigned to."},
    )
    sort = forms.ChoiceField(
        label="Order",
        choices=SORT_CHOICES,
        required=False,
        error_messages={"invalid_choice": "Choose an order from the list."},
    )
    # The keyset position: not typed by a person, so one that is not ours quietly
    # means the first page.
    after = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, teams=(), buckets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [
            ("", "All my teams"),
            *[(team.pk, team.name) for team in teams],
        ]
        self.fields["bucket"].choices = [
            (bucket.key, bucket.name) for bucket in buckets
        ]

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"].strip().upper()

    def clean_destination(self) -> str:
        return self.cleaned_data["destination"].strip().upper()

    def clean_sort(self) -> str:
        return self.cleaned_data["sort"] or PRIORITY

    def clean_after(self):
        value = self.cleaned_data["after"]
        return cursor_decode(value) if value else None

    def valid_data(self) -> dict:
        """The values that parsed (all of them when the form is valid)."""
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.errors
        }


class ReasonForm(forms.Form):
    """A reason a person gives for an action (required unless the rule says not)."""

    reason = forms.CharField(
        label="Reason",
        max_length=REASON_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Enter a reason."},
    )


class ViewDocumentForm(forms.Form):
    reason = forms.CharField(
        label="Why do you need to see the document?",
        help_text="Your reason is recorded with your name in the access log.",
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Enter why you need to see the document."},
    )


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(
        label="Assign to", coerce=int, error_messages={"required": "Choose a person."}
    )
    reason = ReasonForm.base_fields["reason"]

    def __init__(self, *args, people=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.people = {person.pk: person for person in people}
        self.fields["assignee"].choices = [
            ("", "Choose a person"),
            *[(person.pk, person.get_username()) for person in people],
        ]

    def clean_assignee(self):
        return self.people[self.cleaned_data["assignee"]]


class BulkAssignForm(AssignForm):
    items = forms.TypedMultipleChoiceField(
        label="Work items",
        coerce=str,
        error_messages={"required": "Select at least one work item."},
    )

    def __init__(self, *args, item_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["items"].choices = [(value, value) for value in item_ids]


class RerouteForm(ReasonForm):
    """The practice first (what a person looks up), then why; a confirmation page
    naming the practice follows before anything is sent."""

    field_order = ["ods_code", "reason"]

    ods_code = forms.RegexField(
        label="New practice (ODS code)",
        help_text="For example, A81002. You will see the practice's name and status "
        "before anything is sent.",
        regex=r"^[A-Za-z0-9]{3,10}$",
        max_length=10,
        error_messages={
            "required": "Enter the ODS code of the practice to send it to.",
            "invalid": "Enter an ODS code of 3 to 10 letters and numbers.",
        },
    )

    def clean_ods_code(self) -> str:
        return self.cleaned_data["ods_code"].strip().upper()


class RevealPatientForm(forms.Form):
    reason = forms.CharField(
        label="Why do you need the patient's details?",
        help_text="For example, to trace the patient on PDS. Your reason is recorded "
        "with your name in the access log.",
        max_length=200,
        error_messages={
            "required": "Enter why you need the patient's details.",
            "max_length": "Enter a reason of at most 200 characters.",
        },
    )


HOLDER_CONFIRMED = "holder_confirmed"
VERSION = "version"


def item_guard_add(form: forms.Form, *, version: int, holder: str | None) -> None:
    """Add what every item action carries: the item version the page shows and,
    when another person holds the item, the box saying the actor knows."""
    form.fields[VERSION] = forms.IntegerField(
        widget=forms.HiddenInput,
        initial=version,
        min_value=1,
        error_messages={
            "required": "This form is out of date. Reload the item and try again.",
            "invalid": "This form is out of date. Reload the item and try again.",
        },
    )
    if holder:
        form.fields[HOLDER_CONFIRMED] = forms.BooleanField(
            label=f"I know {holder} holds this item", required=False
        )


class OtherRouteForm(ReasonForm):
    channel = forms.ChoiceField(
        label="How was it sent?",
        choices=OtherRouteChannel.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how it was sent."},
    )
    reference = forms.CharField(
        label="Reference",
        help_text="A tracking number or email reference to find the send by.",
        max_length=255,
        error_messages={"required": "Enter a reference."},
    )


class CorrectedVersionForm(ReasonForm):
    content = forms.FileField(
        label="Corrected document",
        help_text="The whole corrected document (PDF, or a format intake accepts).",
        required=False,
    )
