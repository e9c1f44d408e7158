//! Users, vhosts and permissions, checked by logging in over AMQP.

use crate::harness::start;

#[test]
fn add_user_and_set_permissions_then_log_in_over_amqp() {
    let h = start();
    let out = h.ctl(&["add_user", "bob", "s3cret"]);
    assert_eq!(
        out.ok(),
        "Adding user \"bob\" ...\n\
         Done. Don't forget to grant the user permissions to some virtual hosts! \
         See 'warrenctl help set_permissions' to learn more.\n"
    );
    // No permissions yet: the vhost is refused.
    assert!(h.login("bob", "s3cret", "/").is_err());

    h.ctl(&["add_vhost", "dev"]).ok();
    let out = h.ctl(&["set_permissions", "-p", "dev", "bob", "^bob-.*", ".*", ".*"]);
    assert_eq!(
        out.ok(),
        "Setting permissions for user \"bob\" in vhost \"dev\" ...\n"
    );
    let c = h.login("bob", "s3cret", "dev").expect("bob logs in to dev");
    h.declare(&c, "bob-work", true);
    h.publish(&c, "bob-work", 1);
    h.close(c);
    assert!(h.login("bob", "wrong", "dev").is_err());

    // The vhost was created through the API as guest, who may use it (as in RabbitMQ).
    let out = h.ctl(&["list_permissions", "-p", "dev"]);
    assert_eq!(
        out.ok(),
        "Listing permissions for vhost \"dev\" ...\n\
         user\tconfigure\twrite\tread\n\
         bob\t^bob-.*\t.*\t.*\n\
         guest\t.*\t.*\t.*\n"
    );
    let out = h.ctl(&["-s", "list_user_permissions", "bob"]);
    assert_eq!(out.ok(), "dev\t^bob-.*\t.*\t.*\n");
    let out = h.ctl(&["list_user_permissions", "--formatter", "json", "bob"]);
    assert_eq!(
        out.json(),
        serde_json::json!([{"vhost": "dev", "configure": "^bob-.*", "write": ".*", "read": ".*"}])
    );

    // Tags, then a new password: the tags stay.
    let out = h.ctl(&["set_user_tags", "bob", "monitoring", "management"]);
    assert_eq!(
        out.ok(),
        "Setting tags for user \"bob\" to [monitoring, management] ...\n"
    );
    h.ctl(&["change_password", "bob", "n3w"]).ok();
    assert!(h.login("bob", "s3cret", "dev").is_err());
    h.close(
        h.login("bob", "n3w", "dev")
            .expect("the new password works"),
    );
    let out = h.ctl(&["list_users"]);
    assert_eq!(
        out.ok(),
        "Listing users ...\nuser\ttags\nbob\t[monitoring, management]\nguest\t[administrator]\n"
    );
    // bob can use the API now (management tag), with his own credentials.
    let out = h.ctl(&[
        "--username",
        "bob",
        "--password",
        "n3w",
        "-s",
        "list_queues",
        "-p",
        "dev",
    ]);
    assert_eq!(out.ok(), "bob-work\t1\n");

    // A second add_user does not overwrite the first.
    let out = h.ctl(&["add_user", "bob", "other"]);
    assert!(
        out.fails(70).contains("User \"bob\" already exists"),
        "{out:?}"
    );
    h.close(h.login("bob", "n3w", "dev").expect("password unchanged"));

    let out = h.ctl(&["clear_permissions", "-p", "dev", "bob"]);
    assert_eq!(
        out.ok(),
        "Clearing permissions for user \"bob\" in vhost \"dev\" ...\n"
    );
    assert!(h.login("bob", "n3w", "dev").is_err());
    // Clearing what is not there is fine; for a user who is not there it is not.
    h.ctl(&["clear_permissions", "-p", "dev", "bob"]).ok();
    let out = h.ctl(&["clear_permissions", "-p", "dev", "nobody"]);
    assert!(out.fails(70).contains("User \"nobody\" does not exist"));

    h.ctl(&["delete_user", "bob"]).ok();
    assert_eq!(
        h.ctl(&["-s", "list_users"]).ok(),
        "guest\t[administrator]\n"
    );
    let out = h.ctl(&["delete_user", "bob"]);
    assert!(out.fails(70).contains("User \"bob\" does not exist"));
    let out = h.ctl(&["change_password", "bob", "x"]);
    assert!(out.fails(70).contains("does not exist"));

    let out = h.ctl(&["delete_vhost", "dev"]);
    assert_eq!(out.ok(), "Deleting vhost \"dev\" ...\n");
    let out = h.ctl(&["delete_vhost", "dev"]);
    assert!(out.fails(70).contains("Virtual host 'dev' does not exist"));
    let out = h.ctl(&["list_permissions", "-p", "dev"]);
    assert!(out.fails(70).contains("does not exist"));
}

#[test]
fn passwords_can_come_from_stdin() {
    let h = start();
    h.ctl_stdin(&["add_user", "carol"], "from-stdin\n").ok();
    h.ctl(&["set_permissions", "carol", ".*", ".*", ".*"]).ok();
    h.close(h.login("carol", "from-stdin", "/").expect("carol logs in"));
    h.ctl_stdin(&["change_password", "carol"], "again\n").ok();
    h.close(
        h.login("carol", "again", "/")
            .expect("the new password works"),
    );
    // With nothing on stdin either, it is a usage error.
    h.ctl(&["add_user", "dave"]).fails(64);
}
