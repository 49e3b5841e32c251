-- syncguard control plane 0004: the Step Functions task token a plan's approval completes.
-- The workflow's approval step stores it (approval Lambda, action "await"); the decision, made
-- through the same Lambda, completes it. Only that function ever sees or completes a token.

ALTER TABLE syncguard_control.repair_plan ADD COLUMN task_token text;
