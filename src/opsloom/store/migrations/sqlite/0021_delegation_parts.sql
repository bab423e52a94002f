-- What each delegate of an approval stage decides as (JSON: delegate -> "user:<id>" or
-- "group:<a>[,group:<b>]"), the part the approver who delegated stood for. It sits beside
-- `delegations` (delegate -> that approver's user id), which keeps its shape: a delegate of a
-- row stored before has no part here and decides as "user:<approver>", as it did then.
ALTER TABLE approval_stages ADD COLUMN delegated_as TEXT NOT NULL DEFAULT '{}';
